"""The leaderboard server: ``create_app(settings)``, SQL models, services, routes, storage."""
