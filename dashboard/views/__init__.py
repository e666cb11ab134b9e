"""One module per view: store (store manager), hq (brand HQ), installer (node health)."""
