"""Import of a code into the caller's account."""
