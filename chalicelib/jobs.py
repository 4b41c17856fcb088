"""Jobs: parse and validate a submission, persist it, and read it back for its owner only."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib import contracts
from chalicelib.contracts import ImageStatus, JobStatus
from chalicelib.dynamo import plain, query_all
from chalicelib.errors import BadRequest, Conflict, NotFound, UploadMissing, ValidationError
from chalicelib.labels import LabelService
from chalicelib.models import registry
from chalicelib.models.base import Box, ImageTask, JobSettings, ModelSpec, settings_from_dict, settings_to_dict
from chalicelib.validation import require_object

JOB_FIELDS = {
    "model",
    "prompt",
    "negativePrompt",
    "mode",
    "quality",
    "cfgScale",
    "seed",
    "variants",
    "outputFormat",
    "stylePreset",
    "images",
}
IMAGE_FIELDS = {"imageRef", "name", "labels", "prompt"}


@dataclass(frozen=True)
class ImageInput:
    image_ref: str
    name: str
    labels: tuple[str, ...]
    prompt: str | None

    @property
    def image_id(self) -> str:
        match = contracts.IMAGE_REF_RE.match(self.image_ref)
        assert match  # validated on parse
        return match.group("image_id")


class _Problems(list):
    def add(self, field: str, message: str) -> None:
        self.append({"field": field, "message": message})


def _optional(body: dict[str, Any], name: str, kind: type | tuple[type, ...], problems: _Problems) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        problems.add(name, f"{name} must be a {getattr(kind, '__name__', 'number')}")
        return None
    return value


def parse_job_request(
    body: Any, *, model_lookup: Callable[[str], ModelSpec] = registry.get_selectable_model, seed: int | None = None
) -> tuple[ModelSpec, JobSettings, list[ImageInput]]:
    """Strictly parse a POST /jobs body; every problem is reported at once."""
    body = require_object(body)
    problems = _Problems()
    for name in sorted(set(body) - JOB_FIELDS):
        problems.add(name, f"unknown field {name!r}")
    model = body.get("model") or registry.default_model_key()
    if not isinstance(model, str):
        raise ValidationError(
            "model must be a model key from GET /models", details=[{"field": "model", "message": "must be a string"}]
        )
    spec = model_lookup(model)  # ModelUnavailable names the usable ones

    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        problems.add("prompt", "prompt must be a string")
        prompt = ""
    negative = _optional(body, "negativePrompt", str, problems) or ""
    cfg = _optional(body, "cfgScale", (int, float), problems)
    chosen_seed = _optional(body, "seed", int, problems)
    variants = _optional(body, "variants", int, problems)
    settings = JobSettings(
        model=spec.key,
        prompt=prompt,
        negative_prompt=negative,
        mode=_optional(body, "mode", str, problems) or contracts.Mode.PRECISE.value,
        quality=_optional(body, "quality", str, problems),
        cfg_scale=float(cfg) if cfg is not None else None,
        # one seed for the whole job, stored, so the batch is consistent and reproducible
        seed=chosen_seed
        if chosen_seed is not None
        else (seed if seed is not None else 1 + secrets.randbelow(spec.seed_max)),
        variants=variants if variants is not None else 1,
        output_format=_optional(body, "outputFormat", str, problems) or contracts.OutputFormat.PNG.value,
        style_preset=_optional(body, "stylePreset", str, problems),
    )

    images: list[ImageInput] = []
    raw_images = body.get("images")
    if not isinstance(raw_images, list) or not 1 <= len(raw_images) <= contracts.MAX_IMAGES_PER_JOB:
        count = len(raw_images) if isinstance(raw_images, list) else 0
        problems.add("images", f"images must be a list of 1 to {contracts.MAX_IMAGES_PER_JOB:,} images, not {count:,}")
        raw_images = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_images):
        where = f"images[{index}]"
        if not isinstance(raw, dict):
            problems.add(where, "each image must be an object with imageRef, name and labels")
            continue
        for name in sorted(set(raw) - IMAGE_FIELDS):
            problems.add(f"{where}.{name}", f"unknown field {name!r}")
        ref = raw.get("imageRef")
        if not isinstance(ref, str) or not contracts.IMAGE_REF_RE.match(ref):
            problems.add(f"{where}.imageRef", "imageRef must be a ref returned by POST /uploads")
            continue
        if ref in seen:
            problems.add(f"{where}.imageRef", f"image {ref} appears more than once in this job")
            continue
        seen.add(ref)
        name = raw.get("name") or ref.rsplit("/", 1)[-1]
        if not isinstance(name, str) or len(name) > contracts.MAX_FILE_NAME_LENGTH:
            problems.add(
                f"{where}.name", f"name must be a string of at most {contracts.MAX_FILE_NAME_LENGTH} characters"
            )
            name = ref.rsplit("/", 1)[-1]
        labels = raw.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            problems.add(f"{where}.labels", "labels must be a list of label names")
            labels = []
        labels = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
        if len(labels) > contracts.MAX_LABELS_PER_IMAGE:
            problems.add(
                f"{where}.labels", f"at most {contracts.MAX_LABELS_PER_IMAGE} labels per image, not {len(labels)}"
            )
        for label in labels:
            if len(label) > contracts.MAX_LABEL_LENGTH:
                problems.add(
                    f"{where}.labels", f"label {label[:40]!r}... is longer than {contracts.MAX_LABEL_LENGTH} characters"
                )
        image_prompt = raw.get("prompt")
        if image_prompt is not None and not isinstance(image_prompt, str):
            problems.add(f"{where}.prompt", "prompt must be a string")
            image_prompt = None
        images.append(ImageInput(ref, name, tuple(labels), image_prompt or None))

    if problems:
        raise ValidationError(_summary(problems), details=list(problems))
    tasks = [ImageTask(image_id=i.image_id, key="", name=i.name, labels=i.labels, prompt=i.prompt) for i in images]
    registry.adapter_for(spec).validate(spec, settings, tasks)
    return spec, settings, images


def _summary(problems: list[dict[str, str]]) -> str:
    head = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"the job request is not valid: {head}{more}"


def _boxes_for(labels: list[dict[str, Any]], kept: tuple[str, ...]) -> list[Box]:
    wanted = {name.lower() for name in kept}
    boxes = []
    for label in labels:
        if label["name"].lower() in wanted:
            for instance in label.get("instances", []):
                box = instance["box"]
                boxes.append((box["left"], box["top"], box["width"], box["height"]))
    return boxes


def _decimal(value: Any) -> Any:
    return json.loads(json.dumps(value), parse_float=Decimal)


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(plain(key)).encode()).decode() if key else None


def _decode_cursor(cursor: str, owner: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError as exc:
        raise BadRequest("cursor is not valid: pass nextCursor from the previous page") from exc
    if not isinstance(key, dict) or key.get("gsi1pk") != contracts.owner_index_pk(owner):
        raise BadRequest("cursor is not valid: pass nextCursor from the previous page")
    return key


class JobService:
    def __init__(self, table: Any, s3: Any, bucket: str, labels: LabelService) -> None:
        self.table = table
        self.s3 = s3
        self.bucket = bucket
        self.labels = labels

    # ------------------------------------------------------------------ write

    def _missing_uploads(self, owner: str, images: list[ImageInput]) -> list[ImageInput]:
        """Images whose original is not in S3: one listing per upload batch, not a HEAD per image
        (10,000 HEADs would not fit API Gateway's 29 s)."""
        present: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        for upload_id in sorted({i.image_ref.split("/", 1)[0] for i in images}):
            prefix = f"{contracts.upload_prefix(owner)}{upload_id}/"
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                present.update(obj["Key"] for obj in page.get("Contents", []))
        return [i for i in images if contracts.upload_key(owner, i.image_ref) not in present]

    def submit(self, owner: str, spec: ModelSpec, settings: JobSettings, images: list[ImageInput]) -> dict[str, Any]:
        missing = self._missing_uploads(owner, images)
        if missing:
            names = ", ".join(f"'{i.name}'" for i in missing[:5])
            raise UploadMissing(
                f"{len(missing)} image(s) were never uploaded or have expired: {names}",
                details=[{"imageRef": i.image_ref, "name": i.name} for i in missing],
            )
        keys = {i.image_ref: contracts.upload_key(owner, i.image_ref) for i in images}
        labelled = [keys[i.image_ref] for i in images if i.labels]
        labels = self.labels.cached_many(labelled)
        for key in labelled:  # not detected yet (the upload event may still be on its way)
            if key not in labels:
                labels[key] = self.labels.detect_and_cache(key)
        job_id = contracts.new_job_id()
        created_at = contracts.utc_now_iso()
        # image items first: the job item's INSERT on the stream starts the workflow
        with self.table.batch_writer() as batch:
            for image in images:
                key = keys[image.image_ref]
                boxes = _boxes_for(labels[key], image.labels) if image.labels else []
                item: dict[str, Any] = {
                    "pk": contracts.job_pk(job_id),
                    "sk": contracts.image_sk(image.image_id),
                    "imageId": image.image_id,
                    "imageRef": image.image_ref,
                    "key": key,
                    "name": image.name,
                    "labels": list(image.labels),
                    "boxes": [list(b) for b in boxes],
                    "status": ImageStatus.PENDING.value,
                }
                if image.prompt:
                    item["prompt"] = image.prompt
                batch.put_item(Item=_decimal(item))
        job = {
            "pk": contracts.job_pk(job_id),
            "sk": contracts.JOB_SK,
            "jobId": job_id,
            "owner": owner,
            "createdAt": created_at,
            "status": JobStatus.SUBMITTED.value,
            "model": spec.key,
            "settings": settings_to_dict(settings),
            "imageCount": len(images),
            "counts": {s.value: (len(images) if s is ImageStatus.PENDING else 0) for s in ImageStatus},
            "gsi1pk": contracts.owner_index_pk(owner),
            "gsi1sk": f"{created_at}#{job_id}",
        }
        self.table.put_item(Item=_decimal(job), ConditionExpression="attribute_not_exists(pk)")
        return {"jobId": job_id, "status": JobStatus.SUBMITTED.value, "imageCount": len(images), "model": spec.key}

    def retry_failed(self, owner: str, job_id: str) -> dict[str, Any]:
        job = self.get_job(owner, job_id)
        if job["status"] not in {s.value for s in contracts.TERMINAL_JOB_STATUSES}:
            raise Conflict(f"job {job_id} is still {job['status']}; retry it when it has finished")
        failed = [i for i in self._images(job_id) if i["status"] == ImageStatus.FAILED.value]
        if not failed:
            raise BadRequest(f"job {job_id} has no failed images to retry")
        spec = registry.get_selectable_model(job["model"])
        settings = settings_from_dict(job["settings"])
        images = [ImageInput(i["imageRef"], i["name"], tuple(i.get("labels") or ()), i.get("prompt")) for i in failed]
        tasks = [ImageTask(image_id=i.image_id, key="", name=i.name, labels=i.labels, prompt=i.prompt) for i in images]
        registry.adapter_for(spec).validate(spec, replace(settings, model=spec.key), tasks)
        result = self.submit(owner, spec, settings, images)
        return {**result, "retryOf": job_id}

    # ------------------------------------------------------------------ read

    def get_job(self, owner: str, job_id: str) -> dict[str, Any]:
        # another owner's job looks exactly like a job that does not exist
        if not contracts.is_job_id(job_id):
            raise NotFound(f"no job {job_id}")
        item = self.table.get_item(Key={"pk": contracts.job_pk(job_id), "sk": contracts.JOB_SK}).get("Item")
        if not item or item.get("owner") != owner:
            raise NotFound(f"no job {job_id}")
        return plain(item)

    def _images(self, job_id: str) -> list[dict[str, Any]]:
        condition = Key("pk").eq(contracts.job_pk(job_id)) & Key("sk").begins_with(contracts.IMAGE_SK_PREFIX)
        return [plain(i) for i in query_all(self.table, KeyConditionExpression=condition)]

    @staticmethod
    def summary(job: dict[str, Any]) -> dict[str, Any]:
        out = {k: job.get(k) for k in ("jobId", "status", "model", "createdAt", "finishedAt", "imageCount", "counts")}
        out["prompt"] = (job.get("settings") or {}).get("prompt")
        if job.get("standIn"):
            out["standIn"] = True
        if job.get("notification"):
            out["notification"] = job["notification"]
        if job.get("cause"):
            out["cause"] = job["cause"]
        return out

    def list_jobs(self, owner: str, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        limit = max(1, min(int(limit), contracts.MAX_JOBS_PAGE_SIZE))
        kwargs: dict[str, Any] = {
            "IndexName": contracts.OWNER_INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(contracts.owner_index_pk(owner)),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(cursor, owner)
        page = self.table.query(**kwargs)
        return {
            "jobs": [self.summary(plain(item)) for item in page.get("Items", [])],
            "nextCursor": _encode_cursor(page.get("LastEvaluatedKey")),
        }

    def _url(self, key: str) -> str:
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=contracts.DOWNLOAD_URL_TTL_SECONDS
        )

    def job_view(self, owner: str, job_id: str) -> dict[str, Any]:
        job = self.get_job(owner, job_id)
        images = sorted(self._images(job_id), key=lambda i: (i.get("name") or "", i["imageId"]))
        counts = {s.value: 0 for s in ImageStatus}
        view_images = []
        for image in images:
            counts[image["status"]] = counts.get(image["status"], 0) + 1
            view_images.append(
                {
                    "imageId": image["imageId"],
                    "imageRef": image.get("imageRef"),
                    "name": image.get("name"),
                    "status": image["status"],
                    "errorCode": image.get("errorCode"),
                    "cause": image.get("cause"),
                    "labels": image.get("labels") or [],
                    "prompt": image.get("prompt"),
                    "originalUrl": self._url(image["key"]),
                    "outputs": [{**o, "url": self._url(o["key"])} for o in image.get("outputs") or []],
                }
            )
        view = {**self.summary(job), "counts": counts, "settings": job.get("settings"), "images": view_images}
        if job["status"] in {s.value for s in contracts.TERMINAL_JOB_STATUSES} and job.get("reportKeys"):
            view["reports"] = {fmt: self._url(key) for fmt, key in job["reportKeys"].items()}
        return view

    def report_url(self, owner: str, job_id: str, fmt: str) -> dict[str, Any]:
        if fmt not in ("json", "csv"):
            raise BadRequest("format must be json or csv")
        self.get_job(owner, job_id)
        key = contracts.report_key(owner, job_id, fmt)
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise NotFound(f"job {job_id} has no report yet: it is written when every image has finished") from exc
        return {"format": fmt, "url": self._url(key), "expiresIn": contracts.DOWNLOAD_URL_TTL_SECONDS}
