"""deepbow's shipped data, installed as the package `deepbow_data`: the default DeepBoW and
EBRM models (models/) and a 300-product sample catalogue. Found by deepbow/locations.py."""
