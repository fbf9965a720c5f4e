"""Every Redis key of the store, named once.

Every key starts with ``{prefix}:`` — a hash tag, so all of them live in one Redis Cluster
slot and the Lua scripts stay legal there.

==============================  =====================================================
``{p}:job:<job_id>``            hash: the job record (JSON-encoded complex fields)
``{p}:idem:<key>``              string: idempotency key -> "<job id> <fingerprint>" (TTL)
``{p}:remotes``                 hash: Akool task id -> job id of jobs following one
``{p}:events``                  stream: one entry per transition (consumer groups)
``{p}:wakeup``                  zset: queued job ids by when to (re)send their submit
``{p}:submitting``              zset: job ids in ``submitting`` by when they entered it
``{p}:ambiguous``               zset: job ids whose create may have run, by grace deadline
``{p}:inflight``                zset: job ids submitting, submitted or processing
``{p}:poll``                    zset: job ids (or ``a:<hash>`` analyses) by next poll time
``{p}:outbox``                  zset: terminal job ids whose notify has not completed
``{p}:store``                   zset: ``storing`` job ids by when to (re)send their copy
``{p}:admit:line``              zset (lex): queued jobs waiting for fair admission, as
                                ``<producer>|<9-priority><seq>|<job_id>`` (one line per
                                producer, by priority then arrival)
``{p}:admit:counts``            hash: per producer, ``busy:<p>`` jobs in flight and
                                ``pend:<p>`` jobs admitted whose create has not settled
``{p}:admit:state``             hash: the fair scheduler's virtual time (``v``), each
                                producer's ``pass:<p>``, ``w:<p>`` weight, ``tat:<p>`` rate
                                share state, and ``seq`` (arrival counter)
``{p}:admit:grants``            hash: admitted job id -> ``<create slot> <admitted at>``
                                until its create settles
``{p}:admit:rate``              hash: admissions per 10 s bucket (the admission rate)
``{p}:ledger``                  hash: ``d<unix day>:<producer>:credits`` and ``:jobs``
``{p}:analysis:<hash>``         hash: the analysis of one source video URL
``{p}:analysis:<hash>:waiters`` set: queued job ids waiting for that analysis
``{p}:circuit:<name>``          string: end of a pause all workers respect (credits, akool)
``{p}:failures:<name>``         string: consecutive failures counted by a breaker (TTL)
``{p}:receiver:up-since``       string: since when a webhook receiver reaches Redis (TTL)
``{p}:rate:<name>``             string: a global rate limit's state (GCRA)
``{p}:nonce:<digest>``          string: a webhook delivery already stored (TTL)
``{p}:lock:<name>:<id>``        string: a short lock (notify, callback delivery)
``{p}:callback-dead:<job_id>``  hash: a dead-lettered HTTP callback
``{p}:callback-dead``           zset: dead-lettered job ids by time
``{p}:dead-message:<id>``       hash: a queue entry no worker could take (bytes, reason)
``{p}:dead-messages``           zset: dead message ids by time
``{p}:misrouted``               hash: our task messages moved out of Celery's default
                                queue (``moved``, ``last_at``, ``last_task``)
``{p}:beat:<task>``             string: when a beat task last ran (server clock)
``{p}:worker:<hostname>``       string: a consuming worker's presence record (TTL)
==============================  =====================================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

#: The schedules, in the order the scripts receive them (KEYS[n..]); names as in
#: :data:`headswap_client.states.SCHEDULE_HOLDS`.
SCHEDULES: Final = (
    "wakeup", "submitting", "ambiguous", "inflight", "poll", "outbox", "callback", "store",
)  # fmt: skip
#: Poll-schedule members for analyses start with this (job ids cannot contain ':').
ANALYSIS_MEMBER_PREFIX: Final = "a:"


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Keys:
    """Key names for one prefix (``HEADSWAP_KEY_PREFIX``)."""

    prefix: str

    @property
    def tag(self) -> str:
        """``{prefix}``: the hash tag every key starts with."""
        return "{" + self.prefix + "}"

    def job(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}"

    def idempotency(self, key: str) -> str:
        return f"{self.tag}:idem:{key}"

    @property
    def remotes(self) -> str:
        return f"{self.tag}:remotes"

    @property
    def events(self) -> str:
        return f"{self.tag}:events"

    def schedule(self, name: str) -> str:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}")
        return f"{self.tag}:{name}"

    @property
    def schedules(self) -> tuple[str, ...]:
        return tuple(self.schedule(name) for name in SCHEDULES)

    def analysis(self, video_url: str) -> str:
        return self.analysis_by_hash(url_hash(video_url))

    def analysis_by_hash(self, digest: str) -> str:
        return f"{self.tag}:analysis:{digest}"

    def analysis_waiters(self, video_url: str) -> str:
        return self.analysis(video_url) + ":waiters"

    def analysis_member(self, video_url: str) -> str:
        """The poll-schedule member that follows the analysis of ``video_url``."""
        return ANALYSIS_MEMBER_PREFIX + url_hash(video_url)

    def circuit(self, name: str) -> str:
        return f"{self.tag}:circuit:{name}"

    @property
    def receiver_up_since(self) -> str:
        return f"{self.tag}:receiver:up-since"

    def failures(self, name: str) -> str:
        return f"{self.tag}:failures:{name}"

    def rate(self, name: str) -> str:
        return f"{self.tag}:rate:{name}"

    def nonce(self, digest: str) -> str:
        return f"{self.tag}:nonce:{digest}"

    def lock(self, name: str, ident: str) -> str:
        return f"{self.tag}:lock:{name}:{ident}"

    def dead_letter(self, job_id: str) -> str:
        return f"{self.tag}:callback-dead:{job_id}"

    @property
    def dead_letters(self) -> str:
        return f"{self.tag}:callback-dead"

    def dead_message(self, entry_id: str) -> str:
        return f"{self.tag}:dead-message:{entry_id}"

    @property
    def dead_messages(self) -> str:
        return f"{self.tag}:dead-messages"

    @property
    def misrouted(self) -> str:
        return f"{self.tag}:misrouted"

    def beat(self, task: str) -> str:
        return f"{self.tag}:beat:{task}"

    def worker(self, hostname: str) -> str:
        return f"{self.tag}:worker:{hostname}"

    @property
    def admit_line(self) -> str:
        return f"{self.tag}:admit:line"

    @property
    def admit_counts(self) -> str:
        return f"{self.tag}:admit:counts"

    @property
    def admit_state(self) -> str:
        return f"{self.tag}:admit:state"

    @property
    def admit_rate(self) -> str:
        return f"{self.tag}:admit:rate"

    @property
    def ledger(self) -> str:
        return f"{self.tag}:ledger"

    @property
    def admit_grants(self) -> str:
        return f"{self.tag}:admit:grants"

    @property
    def transition_extras(self) -> tuple[str, str, str, str]:
        """The keys ``transition.lua`` takes after the schedules (KEYS[13..16])."""
        return (self.admit_line, self.admit_counts, self.ledger, self.admit_grants)

    @property
    def epoch(self) -> str:
        """Since when this Redis holds our data (see :meth:`JobStore.epoch`)."""
        return f"{self.tag}:epoch"
