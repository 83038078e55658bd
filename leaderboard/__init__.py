"""Ranking and showing results: pure ranking functions, templates, plots and exports."""
