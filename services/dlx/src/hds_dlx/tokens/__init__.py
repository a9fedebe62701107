"""The way in: ``api_info``, the questions of ``token/{value}`` and the JWT of
``tokentfa/{value}``."""
