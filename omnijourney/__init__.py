"""omnijourney: real-time omnichannel customer journey tracker."""

__version__ = "0.1.0"
