"""One module per subcommand; see ``recommender.cli`` for the contract."""
