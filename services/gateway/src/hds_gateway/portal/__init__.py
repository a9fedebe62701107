"""Portal links (the URL in the QR code): the SPA, or the DLX answer for DLX clients."""
