"""omnijourney streams: the pure stitching core and the Faust agents around it."""
