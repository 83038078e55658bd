"""The API contract shared by the server, the harness worker and ``tdc-submit``.

Pydantic models only (no I/O). The server answers with them, the client parses them, the
harness produces :class:`EvalResult` and posts it::

    result = EvalResult.model_validate_json(path.read_text())
    client.post_result(submission_id, result)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from submissions import outcomes as codec
from submissions.outcomes import OutcomeKind


class State(StrEnum):
    queued = "queued"
    running = "running"
    scored = "scored"
    failed_user = "failed_user"
    failed_infra = "failed_infra"
    cancelled = "cancelled"


TERMINAL_STATES = frozenset({State.scored, State.failed_user, State.cancelled})


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Bounds of the text a request may carry: every string that is stored is one of these (or has
# its own ``max_length``), sized to its column in server.models (Text columns: a sane size).
Name = Annotated[str, Field(max_length=100)]  # datasets, tasks, recipes, teams, metrics
Label = Annotated[str, Field(max_length=200)]  # workers, job ids, methods, devices, versions
Digest = Annotated[str, Field(max_length=64)]  # sha256 hex digests, lease tokens
Version = Annotated[str, Field(max_length=50)]  # recipe and dataset versions
MAX_SEEDS = 1000


class Problem(Schema):
    """One thing wrong with a request or a subset; ``sample`` names offending values."""

    code: str
    message: str
    sample: list[str] = Field(default_factory=list)
    count: int | None = None


# --- what an evaluation is of --------------------------------------------------------------

FRACTION_TOLERANCE = 1e-9  # fractions closer than this are the same (float noise)


class EvalIdentity(Schema):
    """What determines an evaluation of a subset. Equal identities are evaluated once and share
    the result: ``key`` is the server's dedup key and what the harness's work key hashes.

        ident = EvalIdentity(dataset="demo", fraction=0.1, task=None, recipe="linear_probe",
                             sha256=report.sha256)
        ident.key                             # "demo|0.1|*|linear_probe|<sha256>"
        ident.differences(result.identity)    # [] when the result is of this evaluation
        EvalIdentity.of(row)                  # of anything with the five attributes
    """

    dataset: Name
    fraction: float
    task: Name | None = Field(description="one task; None: every task of the dataset")
    recipe: Name
    sha256: Digest = Field(description="the canonical subset's sha256 (not the file's)")

    @classmethod
    def of(cls, obj: object) -> EvalIdentity:
        """The identity of an object with these five attributes (a row, a public view)."""
        return cls.model_validate(obj, from_attributes=True)

    @property
    def key(self) -> str:
        """The dedup key (stored in the database: its format never changes). The fraction is
        written to 9 significant digits, so float noise in it gives the same key."""
        return self._join(self.recipe)

    def pinned_key(self, recipe_hash: str) -> str:
        """``key`` with the recipe's config hash after its name: one recipe version only."""
        return self._join(f"{self.recipe}|{recipe_hash}")

    def _join(self, recipe: str) -> str:
        return f"{self.dataset}|{self.fraction:.9g}|{self.task or '*'}|{recipe}|{self.sha256}"

    def differences(self, other: EvalIdentity) -> list[str]:
        """How ``other`` differs from this identity, a line per field; [] when it is the same
        evaluation (fractions within ``FRACTION_TOLERANCE`` are the same)."""
        out = [
            f"{name} is {theirs!r}, expected {mine!r}"
            for name, mine, theirs in (
                ("dataset", self.dataset, other.dataset),
                ("task", self.task, other.task),
                ("recipe", self.recipe, other.recipe),
                ("subset sha256", self.sha256, other.sha256),
            )
            if mine != theirs
        ]
        if abs(self.fraction - other.fraction) > FRACTION_TOLERANCE:
            out.append(f"fraction is {other.fraction!r}, expected {self.fraction!r}")
        return out


# --- results -------------------------------------------------------------------------------


MAX_OUTCOME_CHARS = 16 * 2**20  # base64 text of one outcome array (~12 MB of bytes)
OutcomeText = Annotated[str, Field(max_length=MAX_OUTCOME_CHARS)]


class ExampleOutcomes(Schema):
    """One seed's outcome on every test example: what resampling the test set needs.

    Arrays follow the test split's row order, which is its canonical UID order (``order``);
    ``uids_sha256`` is ``submissions.outcomes.uids_digest`` of those UIDs, so a consumer
    checks the order against the split it holds. ``arrays`` are base64 of the encodings in
    ``submissions.outcomes.KINDS`` (packed bits, float16, ...): build with :meth:`of`, read with
    :meth:`decode`. Per kind: ``correct`` (classification, accuracy = mean), ``error``
    (regression: ``sq_err`` and ``abs_err``, mse / mae = means), ``rank1_hit`` (reid: rank1 =
    ``hit[counted].mean()``), ``detection_matches`` (per-image matches; mAP recomputed from them).

    Balanced accuracy on a resample: the test split's ``label`` column (not repeated here)
    gives each example's class; it is the mean over the classes present in the resample of
    that class's mean ``correct``. The per-seed ``metrics`` stay the reported scores.

    ``seeds`` > 1: the record stacks that many training seeds (a reference row's selection
    seed, whose score is the mean over the recipe's training seeds; see
    ``submissions.outcomes``): build with :meth:`stack`, read one dict per training seed with
    :meth:`decode_seeds` (:meth:`decode` gives the stacked arrays).
    """

    kind: OutcomeKind
    n: int = Field(ge=0, description="examples in the test split")
    order: Literal["test_uid"] = "test_uid"
    uids_sha256: Digest
    arrays: dict[Name, OutcomeText] = Field(max_length=8)
    seeds: int = Field(1, ge=1, le=MAX_SEEDS,
                       description="training seeds stacked seed-major in the arrays")  # fmt: skip

    @model_validator(mode="after")
    def _lengths(self) -> ExampleOutcomes:
        self.decode()  # ValueError (a 422 at the API) when an array has the wrong length
        return self

    @classmethod
    def stack(cls, parts: Sequence[ExampleOutcomes]) -> ExampleOutcomes:
        """One record of every part's training seeds, in order (per-example arrays seed-major,
        per-box arrays concatenated); ValueError when the parts are of different kinds, sizes
        or orders."""
        import numpy as np

        if not parts:
            raise ValueError("nothing to stack")
        identities = {(p.kind, p.n, p.order, p.uids_sha256) for p in parts}
        if len(identities) != 1:
            raise ValueError(f"stacked outcomes disagree on kind, size or order: {identities}")
        first = parts[0]
        decoded = [p.decode() for p in parts]
        arrays = {name: np.concatenate([d[name] for d in decoded]) for name in decoded[0]}
        raw = codec.encode_all(first.kind, arrays)
        return cls(kind=first.kind, n=first.n, order=first.order, uids_sha256=first.uids_sha256,
                   arrays={k: codec.to_text(v) for k, v in raw.items()},
                   seeds=sum(p.seeds for p in parts))  # fmt: skip

    @classmethod
    def of(cls, kind: OutcomeKind, arrays: Mapping[str, Any], *, uids: Any) -> ExampleOutcomes:
        """Encode per-example (and per-box) arrays of a split with UIDs ``uids``, in order."""
        raw = codec.encode_all(kind, arrays)
        uid_list = [str(u) for u in uids]
        return cls(kind=kind, n=len(uid_list), uids_sha256=codec.uids_digest(uid_list),
                   arrays={k: codec.to_text(v) for k, v in raw.items()})  # fmt: skip

    def raw(self) -> dict[str, bytes]:
        """The arrays' bytes (what the server stores)."""
        try:
            return {k: codec.from_text(v) for k, v in self.arrays.items()}
        except ValueError as err:
            raise ValueError(f"outcome arrays must be base64: {err}") from None

    def decode(self) -> dict[str, Any]:
        """Every array as numpy (bool, float16, ...), stacked over the training seeds;
        ValueError on a wrong length."""
        return codec.decode_all(self.kind, self.n, self.raw(), seeds=self.seeds)

    def decode_seeds(self) -> list[dict[str, Any]]:
        """One dict of arrays per training seed, in seed order (``[decode()]`` for one seed)."""
        return codec.split_seeds(self.kind, self.n, self.decode(), self.seeds)


class SeedResult(Schema):
    seed: int
    metrics: dict[Name, float]
    per_class: dict[Label, float] = Field(default_factory=dict)
    # The same metrics on the task's public query split: what variants are chosen by.
    query_metrics: dict[Name, float] | None = None
    # Every test example's outcome (None from workers before outcomes): what bootstrap
    # intervals and paired tests resample. A reference row's seed (a selection seed, its
    # metrics the mean over training seeds) carries every training seed's, stacked.
    outcomes: ExampleOutcomes | None = None


class TaskResult(Schema):
    """Scores of one task's test split: per seed, and mean / std over seeds."""

    task: Name
    test_size: int
    seeds: list[SeedResult] = Field(max_length=MAX_SEEDS)
    mean: dict[Name, float]
    std: dict[Name, float]
    query_size: int | None = None
    query_mean: dict[Name, float] | None = None

    @model_validator(mode="after")
    def _outcomes_cover_the_test(self) -> TaskResult:
        for s in self.seeds:
            if s.outcomes is not None and s.outcomes.n != self.test_size:
                raise ValueError(
                    f"task {self.task} seed {s.seed}: outcomes of {s.outcomes.n} examples, "
                    f"the test split has {self.test_size}"
                )
        return self


class SelectionRecord(Schema):
    """How a reference row's subsets were selected: the method, every parameter (defaults
    included), the selection seeds and each seed's subset (sha256, in seed order). A row
    averaged over seeds scores each subset and reports mean and std over the seeds."""

    method: Name
    params: dict[Name, Any]
    seeds: list[int] = Field(max_length=MAX_SEEDS)
    subsets: list[Digest] = Field(max_length=MAX_SEEDS)


class Manifest(Schema):
    """Everything needed to reproduce or refuse to compare a score."""

    code_version: str = Field(max_length=100)
    recipe: Name
    recipe_version: Version
    recipe_hash: Digest
    dataset: Name
    dataset_version: Version
    dataset_manifest_hash: Digest
    # The embedding set the recipe and selection read (harness.embed.sets), when there is one.
    embedding_set: Name | None = None
    embedding_fingerprint: Digest | None = None
    subset_sha256: Digest
    seeds: list[int] = Field(max_length=MAX_SEEDS)
    libraries: dict[Name, Label]
    device: Label
    executor: Name = "inline"
    job_id: Label | None = None
    wall_time_s: float
    # Seeds whose scores were read from the results store (harness.store), not retrained.
    reused_seeds: list[int] = Field(default_factory=list, max_length=MAX_SEEDS)
    # Reference rows made by a selection method (harness.references): how, in full.
    selection: SelectionRecord | None = None
    # The decoded-image cache the recipe read (harness.datasets.image_cache); None: originals.
    image_cache: Label | None = None


class EvalResult(Schema):
    """What one evaluation of one subset produces."""

    dataset: Name
    fraction: float
    task: Name | None
    recipe: Name
    subset_size: int
    classes_seen: int | None = None
    tasks: list[TaskResult] = Field(max_length=1000)
    manifest: Manifest

    @property
    def identity(self) -> EvalIdentity:
        """What this result is of (the subset's sha256 is the manifest's)."""
        r = self
        return EvalIdentity(dataset=r.dataset, fraction=r.fraction, task=r.task, recipe=r.recipe,
                            sha256=r.manifest.subset_sha256)  # fmt: skip


# --- submissions ---------------------------------------------------------------------------

Kind = Literal["submission", "baseline", "oracle"]


class SubmissionMeta(Schema):
    """What a participant declares with an upload."""

    dataset: Name
    fraction: float = Field(gt=0, le=1)
    task: Name | None = None
    recipe: Name | None = None
    name: Label | None = Field(None, description="free-text method name")


class SubmissionPublic(Schema):
    id: int
    team: str
    dataset: str
    fraction: float
    task: str | None
    recipe: str
    sha256: str
    size: int
    state: State
    kind: Kind = "submission"
    name: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    url: str | None = None
    picked: bool | None = Field(None, description="a final pick (owner and organizers)")

    @property
    def identity(self) -> EvalIdentity:
        return EvalIdentity.of(self)


# --- organizer / worker --------------------------------------------------------------------


class ClaimRequest(Schema):
    worker: Label
    max_jobs: int = Field(10, gt=0, le=1000)
    lease_seconds: int = Field(600, gt=0, le=86400)
    dataset: Name | None = None


class ClaimedSubmission(Schema):
    id: int
    identity: EvalIdentity
    attempts: int
    lease_token: str
    lease_expires_at: datetime


class Heartbeat(Schema):
    lease_token: Digest
    lease_seconds: int = Field(600, gt=0, le=86400)
    job_id: Label | None = None
    # What the executor says of the job ("pending (Priority)", "running"): recorded as a
    # ``job_state`` event when it changes, so a waiting submission says why it waits.
    job_state: Label | None = None


class ResultPost(Schema):
    lease_token: Digest
    result: EvalResult


class FailurePost(Schema):
    lease_token: Digest
    kind: Literal["user", "infra"]
    message: str = Field(max_length=10_000)
    log_tail: str | None = Field(None, max_length=100_000)


class ReferencePost(Schema):
    """Reference results an organizer records without a subset file: the train-on-query
    oracle, or a baseline method scored by the harness (averaged over selection seeds, its
    manifest's ``selection`` saying how). Shown on boards, flagged, never ranked; ``name``
    labels the row on boards."""

    kind: Literal["oracle", "baseline"] = "oracle"
    team: Name = Field("oracle", min_length=1)
    name: Label | None = Field(None, description="the row's label on boards")
    results: list[EvalResult] = Field(min_length=1, max_length=1000)


class ReferencesRecorded(Schema):
    """One row per posted result (in order); ``created``: how many were new."""

    submissions: list[SubmissionPublic]
    created: int


# --- server: datasets, submission details, organizer actions (added with the server) ------


class TaskPublic(Schema):
    name: str
    description: str = ""
    hidden: bool = False
    revealed: bool = True


class FractionPublic(Schema):
    fraction: float
    budget: int | None = Field(None, description="max subset size; None if not prepared")


class DatasetPublic(Schema):
    """A dataset as the server offers it: what a participant needs to build a subset."""

    name: str
    task_type: str
    version: str
    description: str = ""
    prepared: bool
    pool_size: int | None
    tasks: list[TaskPublic]
    fractions: list[FractionPublic]
    default_recipe: str
    primary_metric: str
    secondary_metric: str | None = None
    higher_is_better: bool = True


class TaskScorePublic(Schema):
    """One task's scores of a submission: mean / std over seeds and every seed's metrics."""

    task: str
    test_size: int
    mean: dict[str, float]
    std: dict[str, float]
    seeds: list[SeedResult] = Field(default_factory=list)


class EventPublic(Schema):
    action: str
    from_state: State | None
    to_state: State
    actor: str
    reason: str | None = None
    created_at: datetime


class SubmissionDetail(SubmissionPublic):
    """One submission with its scores and history. Organizer-only fields are None otherwise."""

    hidden: bool = False
    disqualified: bool = False
    not_before: datetime | None = None
    scores: list[TaskScorePublic] = Field(default_factory=list)
    events: list[EventPublic] = Field(default_factory=list)
    attempts: int | None = None
    worker: str | None = None
    executor_job_id: str | None = None
    lease_expires_at: datetime | None = None
    log_tail: str | None = None
    manifest: Manifest | None = None

    @property
    def job_state(self) -> str | None:
        """What the executor last said of a running submission's job ("pending (Priority)")."""
        if self.state != State.running:
            return None
        said = [e.reason for e in self.events if e.action == "job_state"]
        return said[-1] if said else None


class AdminAction(Schema):
    """An organizer's action on a submission (requeue, cancel, hide, ...): why, for the log."""

    reason: str = Field(min_length=1, max_length=2000)


SubmissionRef = Annotated[int, Field(ge=1, le=2**31 - 1)]  # a 32-bit id column


class PickChange(Schema):
    """A change of final picks (``POST /api/picks``), all or nothing: ``unpick`` first,
    then ``pick``. Picking a picked or unpicking an unpicked submission changes nothing."""

    pick: list[SubmissionRef] = Field(default_factory=list, max_length=100)
    unpick: list[SubmissionRef] = Field(default_factory=list, max_length=100)
    reason: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _something_to_do(self) -> PickChange:
        both = sorted(set(self.pick) & set(self.unpick))
        if both:
            raise ValueError(f"submissions {both} are both picked and unpicked")
        if not self.pick and not self.unpick:
            raise ValueError("name submissions to pick or unpick")
        return self


class Picks(Schema):
    """A team's final picks on one dataset with hidden tests: at most ``limit`` per board
    (fraction and recipe). A team with none on a board has its ``limit`` best submissions by
    public score count there. Picks change while ``open`` and freeze at ``closes_at``."""

    dataset: str
    team: str
    limit: int
    hidden_tasks: list[str]
    open: bool
    closes_at: datetime | None = None
    picks: list[SubmissionPublic] = Field(default_factory=list)


class ServerInfo(Schema):
    version: str
    base_url: str
    max_upload_bytes: int
    quota_per_day: int


class LeaseStatus(Schema):
    id: int
    lease_expires_at: datetime


class ProblemList(Schema):
    """Every error response of the API: ``{"problems": [{"code", "message", ...}]}``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    problems: list[dict[str, object]]
