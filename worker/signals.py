"""Celery-style signals fired in the worker process when a job changes state.

Connect a receiver in code that the worker imports (``celery -A worker.app`` plus your
module in ``HEADSWAP_SIGNAL_MODULES`` or an ``include``)::

    from worker import signals

    @signals.job_succeeded.connect
    def on_done(sender, job, **kwargs):
        print(job["job_id"], job["output_url"])

Every signal passes ``job``: the job record as :meth:`worker.producer.Producer.get` returns it.
"""

from __future__ import annotations

from celery.utils.dispatch import Signal

job_submitted = Signal(name="headswap.job_submitted")
job_succeeded = Signal(name="headswap.job_succeeded")
job_failed = Signal(name="headswap.job_failed")
job_rejected = Signal(name="headswap.job_rejected")
job_cancelled = Signal(name="headswap.job_cancelled")
#: Fired when Akool says the account is out of credits (submissions pause).
credits_exhausted = Signal(name="headswap.credits_exhausted")
#: Fired (``reason=``) when a worker finds that Redis lost our data: creates stop until
#: ``headswap store-lost --ack``.
store_lost = Signal(name="headswap.store_lost")
#: Fired (``producer=``, ``policy=`` hold or fail) once a producer and UTC day when its
#: daily credit budget stops admitting its jobs.
budget_exhausted = Signal(name="headswap.budget_exhausted")

TERMINAL_SIGNALS = {
    "succeeded": job_succeeded,
    "failed": job_failed,
    "rejected": job_rejected,
    "cancelled": job_cancelled,
}
