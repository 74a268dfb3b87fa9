"""Keep an ALB listener's live blue/green split when amazon.aws.elb_application_lb reruns.

elb_application_lb compares a listener's default actions on Type, TargetGroupArn,
RedirectConfig, FixedResponseConfig and AuthenticateOidcConfig only (module_utils/elbv2
_compare_listener), and replaces them when they differ. Passing its own configuration again
would reset the weights the traffic switch set. Passing the listener's current actions reduced
to exactly those keys makes the comparison equal, so the module leaves the actions alone (and
still fixes the certificate or TLS policy if those drifted).
"""

from __future__ import annotations

COMPARED = {
    "type": "Type",
    "target_group_arn": "TargetGroupArn",
    "redirect_config": "RedirectConfig",
    "fixed_response_config": "FixedResponseConfig",
    "authenticate_oidc_config": "AuthenticateOidcConfig",
}


def _camel(value):
    if isinstance(value, dict):
        return {"".join(p[:1].upper() + p[1:] for p in k.split("_")): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def actions_as_compared(actions: list[dict]) -> list[dict]:
    """Current default actions (snake_case, as elb_application_lb_info returns them) reduced to
    the keys elb_application_lb compares, in the CamelCase it takes."""
    return [
        {camel: _camel(action[snake]) for snake, camel in COMPARED.items() if action.get(snake) is not None}
        for action in actions
    ]
