"""Dispatch: evaluation jobs through submitit (SLURM arrays, local processes or in-process).

    from harness.dispatch.executors import executor_spec, launch
    from harness.dispatch.worker import Worker, WorkerOptions

``executors`` wraps submitit, ``reconcile`` tells job state with or without SLURM accounting,
``task`` is what runs inside a job, ``plan`` turns claims into keyed work, and ``worker`` is
the evaluate-pending loop. Nothing here imports torch.
"""
