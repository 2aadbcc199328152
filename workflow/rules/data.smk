# Data stage (issue 3): synthesize | download | local -> prepare -> shuffle -> results/data/{dataset}/
