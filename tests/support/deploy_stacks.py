"""Deploying the deploy/ templates into moto's CloudFormation, and doing what CloudFormation does with the
resources moto leaves out (a StackSet, a custom resource's function), with moto's own APIs."""

from __future__ import annotations

import ast
import json
import types
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import decode_str

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Services whose AWS_ENDPOINT_URL_<SERVICE> points at moto in these tests.
MOTO_SERVICES = ("CLOUDFORMATION", "IAM", "STS", "SQS", "S3", "ORGANIZATIONS", "EVENTBRIDGE", "LAMBDA")


def template(name: str) -> dict:
    """A template as CloudFormation reads it (short-form intrinsics such as !Ref become {"Ref": …})."""
    decoded, matches = decode_str((DEPLOY / name).read_text())
    assert not matches and decoded is not None, matches
    return dict(decoded)


def session_in(account: str, name: str = "deployer", region: str = "us-east-1",
               base: boto3.Session | None = None) -> boto3.Session:
    """Credentials acting in `account` (moto lets any caller assume a role there)."""
    sts = (base or boto3.Session()).client("sts", region_name=region)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{name}", RoleSessionName=name)["Credentials"]
    return boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                         aws_secret_access_key=credentials["SecretAccessKey"],
                         aws_session_token=credentials["SessionToken"], region_name=region)


def deploy(session: boto3.Session, name: str, stack_name: str, **parameters: str) -> dict[str, str]:
    """Create a stack of deploy/<name> and return its outputs; the stack must be CREATE_COMPLETE."""
    cfn = session.client("cloudformation")
    cfn.create_stack(StackName=stack_name, TemplateBody=(DEPLOY / name).read_text(),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    return outputs(session, stack_name)


def outputs(session: boto3.Session, stack_name: str) -> dict[str, str]:
    [stack] = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def role_actions(iam, role_name: str) -> dict[str, set[str]]:
    """Every inline policy of a role (moto's IAM, as the stack created it): name → the actions it allows."""
    found: dict[str, set[str]] = {}
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        if isinstance(document, str):  # moto keeps a role's Policies property as Python's repr of the dict
            text = urllib.parse.unquote(document)
            document = json.loads(text) if text.startswith('{"') else ast.literal_eval(text)
        found[policy_name] = allowed_actions(document)
    assert not iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    return found


def allowed_actions(document: dict) -> set[str]:
    statements = document["Statement"]
    actions: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement["Effect"] == "Allow":
            listed = statement["Action"]
            actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def stack_set_from(wrapper: str, values: dict[str, str], body: str) -> dict[str, Any]:
    """The StackSet resource of a deploy/ wrapper template as CreateStackSet's arguments, its Refs replaced by
    the wrapper's parameter values (given, or the parameter's default), and its instances group."""
    decoded = template(wrapper)
    parameters = decoded["Parameters"]

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"}:
            name = node["Ref"]
            raw = values.get(name, parameters[name].get("Default"))
            assert raw is not None, f"{wrapper}: {name} has no value"
            return raw.split(",") if parameters[name]["Type"] == "CommaDelimitedList" else raw
        if isinstance(node, dict):
            return {key: value(item) for key, item in node.items()}
        if isinstance(node, list):
            return [value(item) for item in node]
        return node

    [resource] = [r for r in decoded["Resources"].values() if r["Type"] == "AWS::CloudFormation::StackSet"]
    properties = value(resource["Properties"])
    [group] = properties.pop("StackInstancesGroup")
    arguments = {key: properties[key] for key in ("StackSetName", "Description", "PermissionModel", "AutoDeployment",
                                                  "CallAs", "Capabilities", "ManagedExecution", "Parameters")}
    arguments["TemplateBody"] = body
    return {"create": arguments, "group": group}


def run_stack_set(session: boto3.Session, wrapper: str, values: dict[str, str], body: str) -> dict[str, Any]:
    """Do with moto's StackSet API what CloudFormation does with the wrapper's StackSet resource: create the
    StackSet, then its instances in the organisational units' accounts and the regions it names."""
    stack_set = stack_set_from(wrapper, values, body)
    cfn = session.client("cloudformation")
    cfn.create_stack_set(**stack_set["create"])
    group = stack_set["group"]
    cfn.create_stack_instances(StackSetName=stack_set["create"]["StackSetName"],
                               DeploymentTargets=group["DeploymentTargets"], Regions=group["Regions"])
    return stack_set


def custom_resource_code(name: str) -> types.ModuleType:
    """The inline code of a template's function, as Lambda loads it (index.py)."""
    [function] = [r for r in template(name)["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    module = types.ModuleType("index")
    exec(compile(function["Properties"]["Code"]["ZipFile"], f"{name}:index.py", "exec"), module.__dict__)
    return module
