"""`plantkit report --tui`: an interactive terminal browser of the report (Textual).

view: the rows every screen shows, computed from build_report's dict (no Textual);
app: the screens (leaderboard, model, compare, help) and the loading worker.
"""
