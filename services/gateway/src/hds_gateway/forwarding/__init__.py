"""Headers between client, gateway and upstream, and who the client is."""
