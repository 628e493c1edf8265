"""Plugin for OpenRLHF 0.11.2: the estimator registry inside OpenRLHF's Ray PPO trainer, without a fork.

- ``experience``  RSPOExperienceMaker (overrides only compute_advantages_and_returns)
- ``trainer``     RSPOPPOTrainer Ray actor + install_trainer() (sync mode)
- ``hooks``       lazy Ray worker_process_setup_hook (async mode)
- ``launch``      ``python -m rspo_patch.openrlhf.launch <openrlhf flags> --rspo.k K ...``
- ``reward_func`` file for ``--reward.remote_url`` (pass / max reward via rspo_core.grading.grade)

Importing this package imports nothing from OpenRLHF (the hook module must stay light).
"""
