"""The peers L2MU is compared with, each trained and run on the fold's protocol: `contender(fold, settings)`."""
