"""Evaluation of routers, one module per question: ``holdout`` (full-information held-out queries),
``curves`` (cost-quality curves, AIQ, APGR/CPT), ``baselines`` (kNN, per-task, fixed choices),
``benchmark`` (the ``zeta evaluate-benchmark`` flow), ``offpolicy`` (IPS/SNIPS/DR from logged
propensities), ``length`` (the output-length model's error), ``cold_start`` (leave-one-model-out of
the descriptor prior), ``bootstrap`` (the one resampling rule), ``gate`` (the one promotion rule), ``drift`` (PSI).
Nothing is imported here, so ``import flows.evaluate.curves`` pulls in neither Polars nor Prefect."""
