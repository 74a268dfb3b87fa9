"""An AWS Application Load Balancer as a traffic router: forward weights on one listener.

The listener's default action forwards to the blue and the green target group with a weight
each (ForwardConfig). Reading gives those weights and the health of every registered target;
applying writes a new ForwardConfig with one ModifyListener call, which the ALB applies to new
requests without dropping the ones in flight.

Why not amazon.aws.elb_application_lb: its listener comparison (module_utils/elbv2
_compare_listener) drops ForwardConfig, so a weighted listener reports "changed" on every run.
Here the weights are compared with what the listener reports, and an unchanged split makes no
API call at all (see ForwardWeights.apply and TrafficBackend.plan).

A listener that forwards to a single target group (TargetGroupArn, no ForwardConfig) counts as
100 to that group's colour and 0 to the other one.
"""

from __future__ import annotations

from ansible_collections.free4allweb.devops.plugins.module_utils.traffic.base import (
    COLOURS,
    Member,
    TrafficBackend,
    TrafficError,
    TrafficState,
)


def _boto():
    """boto3 and botocore's error classes, imported on first use: every traffic call on every
    platform imports this file, and boto3 takes about 0.2 s to import."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - exercised only where boto3 is missing
        raise TrafficError("the alb traffic backend needs boto3 (pip install boto3) on the host running it") from None
    return boto3, (BotoCoreError, ClientError)


def forward_action(actions: list[dict]) -> dict:
    """The listener's forward action; the ALB switch only drives a listener that forwards."""
    forwards = [a for a in actions if a.get("Type") == "forward"]
    if len(forwards) != 1:
        kinds = [a.get("Type") for a in actions]
        raise TrafficError(f"the listener's default action must be one 'forward' action to switch traffic, not {kinds}")
    return forwards[0]


def weights_by_arn(action: dict) -> dict[str, int]:
    """Target group ARN -> weight, from a forward action in either of its two shapes."""
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
    if groups:
        # a ForwardConfig entry without Weight counts as 1 (the API's default)
        return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
    if action.get("TargetGroupArn"):
        return {action["TargetGroupArn"]: 100}
    raise TrafficError("the listener's forward action names no target group")


def colour_weights(arn_weights: dict[str, int], arns: dict[str, str]) -> dict[str, int]:
    """Per-colour weights; a colour whose group is not in the action gets 0. Foreign groups in
    the action are an error: switching would silently drop their share."""
    foreign = sorted(set(arn_weights) - set(arns.values()))
    if foreign:
        raise TrafficError(f"the listener also forwards to target groups that are neither blue nor green: {foreign}")
    return {colour: arn_weights.get(arn, 0) for colour, arn in arns.items()}


def forward_config(weights: dict[str, int], arns: dict[str, str], stickiness: dict | None) -> list[dict]:
    """The DefaultActions that send each colour its weight (both groups always listed, so the
    idle colour stays attached at weight 0 and can be health-checked)."""
    config: dict = {"TargetGroups": [{"TargetGroupArn": arns[c], "Weight": int(weights[c])} for c in COLOURS]}
    if stickiness:
        config["TargetGroupStickinessConfig"] = stickiness
    return [{"Type": "forward", "ForwardConfig": config}]


class ForwardWeights(TrafficBackend):
    """Blue/green weights of an ALB listener's forward action."""

    name = "alb"
    OPTIONS = {
        "region": {"type": "str"},
        "listener_arn": {"type": "str"},
        "load_balancer_name": {"type": "str"},
        "listener_port": {"type": "int", "default": 443},
        "blue_target_group": {"type": "str", "required": True},
        "green_target_group": {"type": "str", "required": True},
        "profile": {"type": "str"},
        "endpoint_url": {"type": "str"},
    }

    def __init__(
        self,
        *,
        blue_target_group: str,
        green_target_group: str,
        region: str | None = None,
        listener_arn: str | None = None,
        load_balancer_name: str | None = None,
        listener_port: int = 443,
        profile: str | None = None,
        endpoint_url: str | None = None,
        client=None,
    ):
        boto3, self._errors = _boto()
        if client is None:
            session = boto3.session.Session(profile_name=profile, region_name=region)
            client = session.client("elbv2", endpoint_url=endpoint_url)
        if not (listener_arn or load_balancer_name):
            raise TrafficError("the alb backend needs listener_arn, or load_balancer_name and listener_port")
        self.client = client
        self._listener_arn = listener_arn
        self.load_balancer_name = load_balancer_name
        self.listener_port = listener_port
        self.target_groups = {"blue": blue_target_group, "green": green_target_group}
        self._arns: dict[str, str] | None = None
        #: number of ModifyListener calls made, for tests and the benchmark
        self.writes = 0

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except self._errors as exc:
            raise TrafficError(f"{what} failed: {exc}") from None

    @property
    def listener_arn(self) -> str:
        if self._listener_arn:
            return self._listener_arn
        lbs = self._call(
            f"finding load balancer {self.load_balancer_name}",
            self.client.describe_load_balancers,
            Names=[self.load_balancer_name],
        )["LoadBalancers"]
        listeners = self._call(
            "listing its listeners", self.client.describe_listeners, LoadBalancerArn=lbs[0]["LoadBalancerArn"]
        )["Listeners"]
        for listener in listeners:
            if listener["Port"] == self.listener_port:
                self._listener_arn = listener["ListenerArn"]
                return self._listener_arn
        raise TrafficError(f"load balancer {self.load_balancer_name} has no listener on port {self.listener_port}")

    @property
    def arns(self) -> dict[str, str]:
        """Colour -> target group ARN (names are looked up once)."""
        if self._arns is None:
            arns = {c: v for c, v in self.target_groups.items() if v.startswith("arn:")}
            names = {c: v for c, v in self.target_groups.items() if not v.startswith("arn:")}
            if names:
                found = self._call(
                    f"finding target groups {sorted(names.values())}",
                    self.client.describe_target_groups,
                    Names=list(names.values()),
                )["TargetGroups"]
                by_name = {tg["TargetGroupName"]: tg["TargetGroupArn"] for tg in found}
                arns.update({c: by_name[n] for c, n in names.items()})
            self._arns = arns
        return self._arns

    def _listener(self) -> dict:
        listeners = self._call(
            "reading the listener", self.client.describe_listeners, ListenerArns=[self.listener_arn]
        )["Listeners"]
        return listeners[0]

    def _members(self, weights: dict[str, int]) -> list[Member]:
        members = []
        for colour, arn in self.arns.items():
            described = self._call(
                f"reading target health of {colour}", self.client.describe_target_health, TargetGroupArn=arn
            )["TargetHealthDescriptions"]
            for target in described:
                health = target.get("TargetHealth", {})
                state = health.get("State", "unknown")
                detail = state + (f" ({health['Reason']})" if health.get("Reason") else "")
                members.append(
                    Member(
                        name=f"{target['Target']['Id']}:{target['Target'].get('Port', '')}",
                        colour=colour,
                        healthy=state == "healthy",
                        weight=weights[colour],
                        detail=detail,
                    )
                )
        return members

    def read(self) -> TrafficState:
        action = forward_action(self._listener().get("DefaultActions", []))
        weights = colour_weights(weights_by_arn(action), self.arns)
        return TrafficState(weights=weights, members=self._members(weights))

    def apply(self, weights: dict[str, int]) -> None:
        action = forward_action(self._listener().get("DefaultActions", []))
        current = colour_weights(weights_by_arn(action), self.arns)
        wanted = {**current, **{c: int(w) for c, w in weights.items()}}
        # our own comparison: the same split makes no call (the amazon.aws module would)
        if wanted == current:
            return
        stickiness = (action.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
        self._call(
            "changing the listener's forward weights",
            self.client.modify_listener,
            ListenerArn=self.listener_arn,
            DefaultActions=forward_config(wanted, self.arns, stickiness),
        )
        self.writes += 1
