"""The shared core below training (``rspo_patch``) and evaluation (``analysis``).

What both sides must agree on lives here, once: answer grading (:mod:`rspo_core.grading`), prompt templates
(:mod:`rspo_core.prompts`), reward kinds (:mod:`rspo_core.rewards`), the HF sampler (:mod:`rspo_core.sampler`),
atomic writes and JSONL reading (:mod:`rspo_core.atomic`, :mod:`rspo_core.jsonl`), the cell grammar
(:mod:`rspo_core.cells`), k schedules (:mod:`rspo_core.schedules`) and ``KEY=VALUE`` hyperparameters
(:mod:`rspo_core.hparams`), content fingerprints (:mod:`rspo_core.fingerprint`), the results-folder lock
(:mod:`rspo_core.locks`), strict argv parsing (:mod:`rspo_core.cli`), the CPU-math pin (:mod:`rspo_core.cpu_math`),
GPU device assignment on one machine without a scheduler (:mod:`rspo_core.devices`) and vLLM's AMX permission on CPUs
(:mod:`rspo_core.vllm_cpu`, a vLLM general plugin). Modules here import the standard library,
third-party libraries (numpy, torch; math-verify, transformers and vLLM lazily) and each other — never
``rspo_patch``, ``analysis`` or ``workflow``.
"""
