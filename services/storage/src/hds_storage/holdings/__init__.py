"""Holdings: what an account holds (whole studies and documents), reads, downloads and
deletes, and the quota it is counted against."""
