"""What the store's runs become: leaderboard statistics and tables, plots, the HTML page, and the
published leaderboards. Reads the store; never loads training code."""
