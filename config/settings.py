"""Typed settings for one healthsync deployment: the shape of the YAML file, its defaults and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from healthsync.config import catalog
from healthsync.config.secrets import register_secret
from healthsync.config.validators import (
    Cron,
    Email,
    HttpUrl,
    LowerCase,
    ReadableFile,
    ResolvedPath,
    SalesforceDomain,
    Secret,
    TimeZone,
    UpperCase,
    ZendeskSubdomain,
    database_url_problem,
    from_file,
    literal_password_in_url,
    resolve_path,
)
from healthsync.redaction import redact


class Section(BaseModel):
    """Every part of the config: immutable, and unknown keys are errors (they are nearly always typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def at_path(subpath: str, message: str) -> PydanticCustomError:
    """An error from a model validator that belongs to one of its keys (the loader appends `subpath`)."""
    return PydanticCustomError("at_path", "{message}", {"subpath": subpath, "message": message})


# --- CRM: Salesforce -----------------------------------------------------------------------------


class SalesforceJwtAuth(Section):
    """OAuth 2.0 JWT bearer flow: a connected app's consumer key plus the certificate's private key."""

    mode: Literal["jwt"]
    consumer_key: str = Field(min_length=1)
    private_key_file: ReadableFile
    username: str = Field(min_length=1)
    domain: SalesforceDomain = "login"

    def read_private_key(self) -> SecretStr:
        """The PEM key, registered for log redaction before anyone can log it."""
        key = self.private_key_file.read_text(encoding="utf-8")
        register_secret(key.strip())
        return SecretStr(key)


class SalesforceClientCredentialsAuth(Section):
    """OAuth 2.0 client-credentials flow (needs My Domain, or an explicit instance URL)."""

    mode: Literal["client_credentials"]
    consumer_key: str = Field(min_length=1)
    consumer_secret: Secret
    domain: SalesforceDomain | None = None
    instance_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _needs_a_host(self) -> SalesforceClientCredentialsAuth:
        if self.domain is None and self.instance_url is None:
            raise at_path("domain", "client_credentials needs your My Domain (e.g. domain: acme.my) or instance_url")
        return self


class SalesforcePasswordAuth(Section):
    """Username + password + security token (SOAP login); the oldest flow, still common."""

    mode: Literal["password"]
    username: str = Field(min_length=1)
    password: Secret
    security_token: Secret | None = None
    domain: SalesforceDomain = "login"


class SalesforceRefreshTokenAuth(Section):
    """OAuth 2.0 refresh token flow: a connected app's client id (and secret, unless the app waives it for
    refresh) plus a refresh token obtained once through the web-server flow. Exchanged at
    `{instance_url or https://{domain}.salesforce.com}/services/oauth2/token`, again whenever the session expires."""

    mode: Literal["refresh_token"]
    client_id: str = Field(min_length=1)
    client_secret: Secret | None = None
    refresh_token: Secret
    domain: SalesforceDomain = "login"
    instance_url: HttpUrl | None = None

    @property
    def token_url(self) -> str:
        base = self.instance_url.rstrip("/") if self.instance_url else f"https://{self.domain}.salesforce.com"
        return f"{base}/services/oauth2/token"


SalesforceAuth = Annotated[
    SalesforceJwtAuth | SalesforceClientCredentialsAuth | SalesforcePasswordAuth | SalesforceRefreshTokenAuth,
    Field(discriminator="mode"),
]


class SalesforceSettings(Section):
    auth: SalesforceAuth
    api_version: str = Field(default="59.0", pattern=r"^\d{2,3}\.0$")


# --- CRM: HubSpot --------------------------------------------------------------------------------


class HubSpotPrivateAppAuth(Section):
    mode: Literal["private_app"]
    access_token: Secret


class HubSpotOAuth(Section):
    """OAuth app: we trade the refresh token for 30-minute access tokens ourselves."""

    mode: Literal["oauth"]
    client_id: str = Field(min_length=1)
    client_secret: Secret
    refresh_token: Secret


HubSpotAuth = Annotated[HubSpotPrivateAppAuth | HubSpotOAuth, Field(discriminator="mode")]


class HubSpotSettings(Section):
    auth: HubSpotAuth


# --- CRM: field map ------------------------------------------------------------------------------


class AccountFields(Section):
    """CRM account (company) fields we read."""

    arr: str
    acv: str
    renewal_date: str
    contract_start: str
    plan_tier: str
    seats: str
    capacity_limit: str
    payment_status: str
    nps: str
    domain: str
    owner: str


class ContactFields(Section):
    """How contacts' roles are read: a role picklist, optional boolean flags, and departure fields."""

    email: str
    role: str
    champion: str | None = None  # a boolean field marking the champion; None: use champion_roles only
    executive_sponsor: str | None = None  # a boolean field; None: use executive_sponsor_roles only
    champion_roles: list[str] = ["Champion", "champion"]
    executive_sponsor_roles: list[str] = ["Executive Sponsor", "exec_sponsor"]
    left_company: str | None = None  # boolean: the contact has left the customer
    left_company_date: str | None = None
    role_changed_date: str | None = None


class OpportunityFields(Section):
    """Opportunities (Salesforce) / deals (HubSpot): how renewals and expansions are recognised."""

    type_field: str
    renewal_types: list[str]
    expansion_types: list[str]
    won_stages: list[str]
    stage: str
    amount: str
    close_date: str
    loss_reason: str | None = None  # a closed-lost renewal's reason (picklist or text); None: not read


class WriteFields(Section):
    """Fields we write; `setup` creates them. Their logical names are what writeback.owned_fields lists."""

    health_score: str
    health_band: str
    component_scores: str
    trend_7d: str
    trend_30d: str
    renewal_stage: str
    days_to_renewal: str
    segment: str
    top_risks: str
    explanation: str
    last_scored_at: str
    task_key: str  # on Task / HubSpot task: the dedupe key that makes task creation idempotent


class FieldMap(Section):
    account: AccountFields
    contact: ContactFields
    opportunity: OpportunityFields
    write: WriteFields


_SALESFORCE_FIELDS: dict[str, dict[str, Any]] = {
    "account": {
        "arr": "ARR__c", "acv": "ACV__c", "renewal_date": "Renewal_Date__c",
        "contract_start": "Contract_Start_Date__c", "plan_tier": "Plan_Tier__c", "seats": "Seats_Purchased__c",
        "capacity_limit": "Usage_Capacity__c", "payment_status": "Payment_Status__c", "nps": "NPS__c",
        "domain": "Website", "owner": "OwnerId",
    },
    "contact": {
        "email": "Email", "role": "Contact_Role__c", "champion": "Is_Champion__c", "executive_sponsor": None,
        "left_company": "Left_Company__c", "left_company_date": "Left_Company_Date__c",
        "role_changed_date": "Role_Changed_Date__c",
    },
    "opportunity": {
        "type_field": "Type", "renewal_types": ["Renewal"],
        "expansion_types": ["Expansion", "Upsell", "Existing Customer - Upgrade"],
        "won_stages": ["Closed Won"], "stage": "StageName", "amount": "Amount", "close_date": "CloseDate",
        "loss_reason": "Loss_Reason__c",
    },
    "write": {
        "health_score": "Health_Score__c", "health_band": "Health_Band__c",
        "component_scores": "Health_Components__c", "trend_7d": "Health_Trend_7d__c",
        "trend_30d": "Health_Trend_30d__c", "renewal_stage": "Renewal_Stage__c",
        "days_to_renewal": "Days_To_Renewal__c", "segment": "CS_Segment__c", "top_risks": "Health_Top_Risks__c",
        "explanation": "Health_Explanation__c", "last_scored_at": "Health_Scored_At__c",
        "task_key": "Healthsync_Key__c",
    },
}

_HUBSPOT_FIELDS: dict[str, dict[str, Any]] = {
    "account": {
        "arr": "arr", "acv": "acv", "renewal_date": "renewal_date", "contract_start": "contract_start_date",
        "plan_tier": "plan_tier", "seats": "seats_purchased", "capacity_limit": "usage_capacity",
        "payment_status": "payment_status", "nps": "nps_score", "domain": "domain", "owner": "hubspot_owner_id",
    },
    "contact": {
        "email": "email", "role": "contact_role", "champion": "is_champion", "executive_sponsor": None,
        "left_company": "left_company", "left_company_date": "left_company_date",
        "role_changed_date": "role_changed_date",
    },
    "opportunity": {
        "type_field": "deal_type", "renewal_types": ["renewal"], "expansion_types": ["expansion", "upsell"],
        "won_stages": ["closedwon"], "stage": "dealstage", "amount": "amount", "close_date": "closedate",
        "loss_reason": "closed_lost_reason",
    },
    "write": {
        "health_score": "healthsync_score", "health_band": "healthsync_band",
        "component_scores": "healthsync_components", "trend_7d": "healthsync_trend_7d",
        "trend_30d": "healthsync_trend_30d", "renewal_stage": "healthsync_renewal_stage",
        "days_to_renewal": "healthsync_days_to_renewal", "segment": "healthsync_segment",
        "top_risks": "healthsync_top_risks", "explanation": "healthsync_explanation",
        "last_scored_at": "healthsync_scored_at", "task_key": "healthsync_key",
    },
}

DEFAULT_FIELD_MAPS: dict[str, dict[str, dict[str, Any]]] = {"salesforce": _SALESFORCE_FIELDS, "hubspot": _HUBSPOT_FIELDS}


def _merge_field_map(defaults: dict[str, dict[str, Any]], given: Any) -> Any:
    """The user's field_map laid over the CRM's defaults, one section deep; odd shapes pass through to fail loudly."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return given
    merged: dict[str, Any] = {name: dict(section) for name, section in defaults.items()}
    for name, section in given.items():
        merged[name] = {**merged[name], **section} if isinstance(section, dict) and name in merged else section
    return merged


class CrmSettings(Section):
    kind: Annotated[Literal["salesforce", "hubspot"], LowerCase]
    salesforce: SalesforceSettings | None = None
    hubspot: HubSpotSettings | None = None
    field_map: FieldMap

    @model_validator(mode="before")
    @classmethod
    def _field_map_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kind = data.get("kind")
            kind = kind.lower() if isinstance(kind, str) else kind
            if kind in DEFAULT_FIELD_MAPS:
                data = {**data, "field_map": _merge_field_map(DEFAULT_FIELD_MAPS[kind], data.get("field_map"))}
        return data

    @model_validator(mode="after")
    def _block_for_kind(self) -> CrmSettings:
        if getattr(self, self.kind) is None:
            raise at_path(self.kind, f"crm.kind is {self.kind}, so a `{self.kind}:` block with its auth is required")
        other = "hubspot" if self.kind == "salesforce" else "salesforce"
        if getattr(self, other) is not None:
            raise at_path(other, f"crm.kind is {self.kind}: remove the `{other}:` block (exactly one CRM is active)")
        return self


# --- Zendesk, Mixpanel ---------------------------------------------------------------------------


class ZendeskTokenAuth(Section):
    mode: Literal["api_token"]
    email: Email
    token: Secret


class ZendeskOAuth(Section):
    mode: Literal["oauth"]
    token: Secret


ZendeskAuth = Annotated[ZendeskTokenAuth | ZendeskOAuth, Field(discriminator="mode")]


class ZendeskSettings(Section):
    subdomain: ZendeskSubdomain
    auth: ZendeskAuth
    high_severity_priorities: list[Annotated[Literal["urgent", "high", "normal", "low"], LowerCase]] = ["urgent", "high"]
    competitor_words: list[Annotated[str, Field(min_length=2)]] = []


class MixpanelServiceAccount(Section):
    username: str = Field(min_length=1)
    secret: Secret


class MixpanelSettings(Section):
    project_id: int = Field(gt=0)
    residency: Annotated[Literal["us", "eu", "in"], LowerCase] = "us"
    service_account: MixpanelServiceAccount
    login_event: str = Field(default="$session_start", min_length=1)
    core_action_events: list[str] = Field(min_length=1)
    feature_events: list[str] = []
    first_value_event: str | None = None
    plan_features: dict[str, list[str]] = {}
    group_key: str = Field(default="account_id", min_length=1)
    group_key_holds: Literal["crm_id", "domain"] = "crm_id"
    lookback_days: int = Field(default=5, ge=0, le=60)
    # days of events the first pull reads: 90 covers every signal; a backtest needs the renewal history it
    # replays plus ~220 days (e.g. 670 for 15 months of renewals), read in at most 13 export calls
    backfill_days: int = Field(default=90, ge=1, le=1100)

    @model_validator(mode="after")
    def _plan_features_are_known(self) -> MixpanelSettings:
        # A feature is named by the event's `feature` property, or by the event name when it has none,
        # so plan features cannot be checked against feature_events; but without feature events none is counted.
        if self.plan_features and not self.feature_events:
            raise at_path("plan_features", "set, but mixpanel.feature_events is empty: list the events that mark "
                                           "feature use (their `feature` property, or the event name, is the feature)")
        return self


# --- store, schedule ----------------------------------------------------------------------------


class StoreSettings(Section):
    data_dir: ResolvedPath = Path("data")
    url: str | None = None

    @field_validator("url", mode="before")  # before: the EnvValue still knows which parts came from the env
    @classmethod
    def _supported_url(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value  # None, or a wrong type the str check will report
        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        if from_file(info) and literal_password_in_url(value):
            raise ValueError("the database password is written in the file: use ${PGPASSWORD} inside the URL, "
                             "or store.url: ${HEALTHSYNC_STORE_URL}")
        password = urlsplit(value).password
        if password:
            register_secret(password)
        return str(value)

    @property
    def resolved_url(self) -> str:
        """The SQLAlchemy URL: `url`, or the SQLite file in data_dir."""
        return self.url or f"sqlite:///{self.data_dir / 'healthsync.db'}"

    @property
    def display_url(self) -> str:
        """resolved_url with any password masked, for printing."""
        return redact(self.resolved_url)


class ScheduleSettings(Section):
    incremental_every_minutes: int | None = Field(default=None, ge=1, le=1440)
    incremental_cron: Cron | None = None
    full_resync_cron: Cron = "0 3 * * sun"
    timezone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _one_incremental_trigger(self) -> ScheduleSettings:
        if self.incremental_every_minutes is not None and self.incremental_cron is not None:
            raise at_path("incremental_cron", "set incremental_every_minutes or incremental_cron, not both")
        return self

    @property
    def incremental_minutes(self) -> int | None:
        """The interval in minutes (5 by default), or None when a cron expression drives incremental runs."""
        if self.incremental_cron is not None:
            return None
        return self.incremental_every_minutes or 5


# --- health model and playbook ------------------------------------------------------------------


@dataclass(frozen=True)
class YamlSource:
    """Where a health model or playbook comes from: a shipped preset, a YAML file, or inline in the config."""

    kind: Literal["preset", "file", "inline"]
    name: str
    path: Path | None = None
    inline: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    def load(self) -> dict[str, Any]:
        """The YAML document as a dict (ValueError with a readable message if the file is broken)."""
        if self.inline is not None:
            return self.inline
        assert self.path is not None
        try:
            document = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{self.path} is not valid YAML: {exc}") from None
        if not isinstance(document, dict):
            raise ValueError(f"{self.path} must hold a mapping at the top level")
        return document

    def __str__(self) -> str:
        return {"preset": f"preset {self.name}", "file": f"file {self.path}", "inline": "inline"}[self.kind]


def _yaml_source(value: Any, info: ValidationInfo, kind: catalog.PresetKind) -> YamlSource:
    if isinstance(value, YamlSource):
        return value
    if isinstance(value, dict):
        return YamlSource("inline", "inline", inline=value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("give a preset name, a path to a .yaml file, or the definition inline as a mapping")
    if catalog.looks_like_path(value):
        path = resolve_path(Path(value), info)
        if not path.is_file():
            raise ValueError(f"file not found: {value}")
        return YamlSource("file", path.stem, path=path)
    preset = catalog.resolve_preset_path(value, kind)
    if preset is None:
        raise ValueError(_unknown_preset_message(value, kind))
    return YamlSource("preset", value, path=preset)


def _unknown_preset_message(name: str, kind: catalog.PresetKind) -> str:
    import difflib

    available = catalog.available_presets(kind)
    if not available:
        return f"unknown {kind} preset '{name}': no presets found in {catalog.presets_dir()}"
    close = difflib.get_close_matches(name, available, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} preset '{name}'{hint}; presets: {', '.join(available)}; or give a path to a .yaml file"


class HealthSettings(Section):
    model: YamlSource = "default"  # type: ignore[assignment]  # a preset name, a path, or inline; becomes a YamlSource

    @field_validator("model", mode="before")
    @classmethod
    def _source(cls, value: Any, info: ValidationInfo) -> YamlSource:
        return _yaml_source(value, info, "health")


class PlaybookSettings(Section):
    source: YamlSource = "default"  # type: ignore[assignment]  # a preset name, a path, or inline

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any, info: ValidationInfo) -> YamlSource:
        return _yaml_source(value, info, "playbook")


# --- writeback, limits, observability, identity, sandbox -----------------------------------------


class WritebackSettings(Section):
    dry_run: bool = True  # safe by default: plan everything, write nothing, until an admin flips it
    owned_fields: list[str] | None = None  # logical names from crm.field_map.write; None = all of them
    we_win_conflicts: bool = False
    escalations: dict[str, Email] = {}  # playbook role -> CRM user email (overrides the playbook's roles:)
    task_cooldown_days: int = Field(default=14, ge=0, le=365)

    @field_validator("owned_fields")
    @classmethod
    def _owned_fields_exist(cls, value: list[str] | None) -> list[str] | None:
        known = list(WriteFields.model_fields)
        for index, name in enumerate(value or ()):
            if name not in known:
                raise at_path(str(index), _not_a_write_field(name, known))
        return value


class SalesforceLimits(Section):
    daily_share: float = Field(default=0.5, gt=0, le=1)
    daily_allocation: int | None = Field(default=None, gt=0)  # None: read it from /limits
    max_concurrent: int = Field(default=4, ge=1, le=25)

    @field_validator("daily_share", mode="before")
    @classmethod
    def _fraction_not_percent(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value <= 100:
            raise ValueError(f"daily_share is a fraction: write {value / 100:g} for {value:g}%")
        return value


class HubSpotLimits(Section):
    requests_per_10s: int = Field(default=100, ge=1, le=250)  # Free/Starter 100; Pro/Enterprise private apps 190
    search_per_second: int = Field(default=4, ge=1, le=5)
    batch_size: int = Field(default=100, ge=1, le=100)


class ZendeskLimits(Section):
    requests_per_minute: int = Field(default=200, ge=1, le=2500)  # Team plan; Growth/Professional 400, Enterprise 700
    incremental_per_minute: int = Field(default=10, ge=1, le=30)


class MixpanelLimits(Section):
    queries_per_hour: int = Field(default=60, ge=1, le=60)
    export_per_second: int = Field(default=3, ge=1, le=3)


class LimitsSettings(Section):
    salesforce: SalesforceLimits = Field(default_factory=SalesforceLimits)
    hubspot: HubSpotLimits = Field(default_factory=HubSpotLimits)
    zendesk: ZendeskLimits = Field(default_factory=ZendeskLimits)
    mixpanel: MixpanelLimits = Field(default_factory=MixpanelLimits)


class ObservabilitySettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=1, le=65535)
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], UpperCase] = "INFO"
    log_format: Annotated[Literal["auto", "json", "console"], LowerCase] = "auto"


class IdentitySettings(Section):
    """The order in which a Zendesk organization / Mixpanel event is matched to a CRM account."""

    zendesk_order: list[Literal["external_id", "domain"]] = Field(default=["external_id", "domain"], min_length=1)
    mixpanel_order: list[Literal["group_key", "email_domain"]] = Field(default=["group_key", "email_domain"], min_length=1)

    @field_validator("zendesk_order", "mixpanel_order")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each method may appear once")
        return value


class SandboxSettings(Section):
    """Offline emulators: when present, these base URLs replace the real hosts (tests and the demo)."""

    salesforce_url: HttpUrl | None = None
    hubspot_url: HttpUrl | None = None
    zendesk_url: HttpUrl | None = None
    mixpanel_url: HttpUrl | None = None
    ca_file: ReadableFile | None = None


# --- the whole file ------------------------------------------------------------------------------


class Settings(Section):
    crm: CrmSettings
    zendesk: ZendeskSettings | None = None
    mixpanel: MixpanelSettings | None = None
    store: StoreSettings = Field(default_factory=StoreSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    playbook: PlaybookSettings = Field(default_factory=PlaybookSettings)
    writeback: WritebackSettings = Field(default_factory=WritebackSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    sandbox: SandboxSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _sections_present(cls, data: Any) -> Any:
        # Absent sections are validated as `{}` so their defaults see the file's context (relative paths, presets).
        if isinstance(data, dict):
            data = dict(data)
            for name in _DEFAULTED_SECTIONS:
                if data.get(name) is None:  # absent, or a bare `store:` line
                    data[name] = {}
        return data

    @property
    def owned_write_fields(self) -> dict[str, str]:
        """Logical name -> CRM field name for every field we may write."""
        write = self.crm.field_map.write.model_dump()
        owned = self.writeback.owned_fields
        return {k: v for k, v in write.items() if owned is None or k in owned}


_DEFAULTED_SECTIONS = ("store", "schedule", "health", "playbook", "writeback", "limits", "observability", "identity")


def _not_a_write_field(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"'{name}' is not a field we write{hint}; choose from: {', '.join(known)}"
