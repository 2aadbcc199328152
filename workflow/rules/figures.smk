# Figures, summary, report (issue 5)
FIGURE_TARGETS = []
