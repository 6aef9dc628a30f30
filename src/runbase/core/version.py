"""runbase's version, in a module that imports nothing: the web app, the server and
the views read it without importing the ``runbase`` facade above them."""

__version__ = "0.1.0"
