"""The route validation runner: feeds the rules of the trade (common.rules) the rows of an
assignment and reconciles their findings with the stored flags."""
