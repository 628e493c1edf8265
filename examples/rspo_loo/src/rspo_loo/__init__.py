"""rspo-loo: an example rspo-bench plugin (one estimator, ``rspo_pass_loo``, in :mod:`rspo_loo.estimators`)."""
