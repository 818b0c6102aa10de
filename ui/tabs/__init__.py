"""One module a tab: its layout, and the handlers that call its task (`pipelines.tasks`)."""
