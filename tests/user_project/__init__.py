"""A small user package, written the way Lightning users write theirs, knowing nothing of lightning-spiral.

The tests (and the CLI test, through ``_target_``) hand these classes to the spiral unchanged:
``LitClassifier`` follows the Lightning docs (its backbone passed in and excluded from
``save_hyperparameters``, judged on its own ``val_acc``); ``LitAutoEncoder`` flattens images inside
``training_step`` and is judged on ``val_loss``.
"""

from user_project.models import AutoEncoder, Backbone, ConvNet, LitAutoEncoder, LitClassifier, TokenClassifier

__all__ = ["AutoEncoder", "Backbone", "ConvNet", "LitAutoEncoder", "LitClassifier", "TokenClassifier"]
