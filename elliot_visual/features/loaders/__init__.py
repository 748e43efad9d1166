"""The feature loaders: importing this package registers every ``dataloader`` name in FEATURE_LOADERS."""
from elliot_visual.features.loaders import (  # noqa: F401  each import registers its loaders
    amazon_binary,
    attributes,
    categories,
    elliot,
    feature_maps,
    images,
    pca,
    vectors,
)
