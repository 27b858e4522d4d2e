"""Marketing (campaigns): campaign performance and customer segmentation data products."""
