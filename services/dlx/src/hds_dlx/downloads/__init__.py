"""The list of a code's studies and reports, and their downloads (``list``,
``download/{id}``, ``downloadall``)."""
