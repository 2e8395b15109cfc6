"""omnijourney schemas: touchpoint models at the topic edge."""
