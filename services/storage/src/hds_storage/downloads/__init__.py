"""Downloads: the index reader (decrypted views and IHE PDI models), archive plans and
responses with Range, and what DLX downloads through a package grant."""
