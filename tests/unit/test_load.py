"""The load layer: YAML + schema + semantic checks, every problem with file:line and path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import load, yamlsource
from controller.errors import ManifestError
from controller.model import Attachment, Document, Link, PortSpec, Protocol, Source, Spec
from tests.manifests import container as container_doc
from tests.manifests import manifest, network

BUILTIN = load.load_builtin()


def y(text: str) -> str:
    """YAML written indented in a test, starting at line 1."""
    return textwrap.dedent(text).lstrip("\n")


def spec_of(text: str, file: str = "t.yaml") -> Spec:
    return load.build_spec(load.parse_text(y(text), file), BUILTIN)


def problems(text: str, file: str = "t.yaml") -> list[str]:
    """All problems, from parsing or from building the spec."""
    with pytest.raises(ManifestError) as info:
        spec_of(text, file)
    return [str(p) for p in info.value.problems]


def container(spec_body: str, name: str = "c") -> str:
    """A Container document: `spec:` is line 5, so the body's first line is line 6."""
    body = textwrap.indent(y(spec_body), "  ")
    return f"apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: {name}\nspec:\n{body}"


# --------------------------------------------------------------------------- shipped files


def test_shipped_default_networks_load() -> None:
    assert [(d.kind, d.name) for d in BUILTIN] == [
        ("Network", "bridge"),
        ("Network", "host"),
        ("Network", "none"),
    ]
    spec = load.build_spec([], BUILTIN)
    bridge = spec.network("bridge")
    assert bridge is not None and bridge.builtin
    assert bridge.driver == "bridge"
    assert bridge.ipam[0].subnet == "172.17.0.0/16" and bridge.ipam[0].gateway == "172.17.0.1"
    assert bridge.options == {
        "com.docker.network.bridge.name": "netctl0",
        "com.docker.network.bridge.default_bridge": "true",
        "com.docker.network.bridge.enable_icc": "true",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
        "com.docker.network.driver.mtu": "1500",
    }
    assert bridge.source.file.endswith("manifests/default-networks.yaml") and bridge.source.line > 0
    assert [(n.name, n.driver, n.builtin) for n in spec.networks[1:]] == [
        ("host", "host", True),
        ("none", "none", True),
    ]


@pytest.mark.parametrize("name", ["network", "container"])
def test_schemas_are_valid_2020_12_and_closed(name: str) -> None:
    schema = json.loads((load.SCHEMA_DIR / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["description"]
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert schema["$defs"]["metadata"]["additionalProperties"] is False


def test_a_string_port_is_checked_by_its_format_alone() -> None:
    """The premise of validating parsed string ports apart (load/schema.py): nothing in the
    schema looks at the ports list as a whole, and a string item meets only its format."""
    schema = json.loads((load.SCHEMA_DIR / "container.schema.json").read_text())
    ports = schema["properties"]["spec"]["properties"]["ports"]
    assert set(ports) == {"description", "type", "items"}
    assert ports["items"]["else"] == {"format": "port-mapping"}
    assert ports["items"]["if"] == {"type": "object"}


_PORT_ITEMS = st.one_of(
    st.sampled_from(["8080:80", "127.0.0.1:53:53/udp", "9000-9002:9000-9002", "[::1]:8080:80", "80",
                     "1:2:3:4", "70000:80", "8080:80/icmp", "0:80", "80:80\n"]),
    st.integers(-1, 70000),
    st.fixed_dictionaries({"containerPort": st.integers(0, 70000), "hostPort": st.integers(0, 70000)}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PORT_ITEMS, max_size=6))
def test_string_ports_checked_apart_give_the_schemas_verdict(items: list[object]) -> None:
    from controller.load import schema as validation

    body = yaml.safe_load(container_doc("c", ports=["8080:80"]))
    body["spec"]["ports"] = items
    doc = Document("Container", "c", body, Source("t.yaml", 1))
    validator = validation._validators()["Container"]
    everything = validation._schema_problems(validator, doc)
    apart = validation._schema_problems(validator, validation._ports_checked_apart(doc))
    assert [str(p) for p in apart] == [str(p) for p in everything]


# --------------------------------------------------------------------------- files and folders


def test_folder_is_read_recursively_sorted_skipping_hidden_and_editor_files(tmp_path: Path) -> None:
    def write(rel: str, name: str) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"apiVersion: netctl/v1\nkind: Network\nmetadata:\n  name: {name}\n")

    write("b.yaml", "b")
    write("a/z.yml", "az")
    write("a.yaml", "a")
    write(".hidden.yaml", "hidden")
    write(".git/x.yaml", "git")
    write("c.yaml~", "backup")
    write("c.yaml.swp", "swap")
    write("#c.yaml#", "autosave")
    write("notes.txt", "txt")
    docs = load.parse_paths([str(tmp_path)])
    assert [d.name for d in docs] == ["az", "a", "b"]
    assert docs[0].source == Source(str(tmp_path / "a" / "z.yml"), 1)


def test_multi_document_files_skip_empty_documents(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        y("""
        # comment only
        ---
        ---
        apiVersion: netctl/v1
        kind: Network
        metadata: {name: one}
        ---
        apiVersion: netctl/v1
        kind: Container
        metadata: {name: two}
        ---
        """)
    )
    docs = load.parse_paths([str(path)])
    assert [(d.kind, d.name, d.source.line) for d in docs] == [("Network", "one", 4), ("Container", "two", 8)]


def test_explicit_file_is_read_whatever_its_extension(tmp_path: Path) -> None:
    path = tmp_path / "net.txt"
    path.write_text("apiVersion: netctl/v1\nkind: Network\nmetadata: {name: n}\n")
    assert [d.name for d in load.parse_paths([str(path)])] == ["n"]


def test_missing_file_and_problems_in_two_files_are_reported_together(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("apiVersion: netctl/v1\nkind: Network\nmetadata:\n  name: a\nspec:\n  drivr: bridge\n")
    second = tmp_path / "second.yaml"
    second.write_text(
        "apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: b\nspec:\n  ports: [70000]\n"
    )
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(ManifestError) as info:
        load.parse_paths([str(first), missing, str(second)])
    assert [str(p) for p in info.value.problems] == [
        f"{first}:6 spec.drivr: unknown field 'drivr' (did you mean 'driver'?)",
        f"{missing}: no such file or directory",
        f"{second}:6 spec.ports[0]: 70000 is greater than the maximum of 65535",
    ]


def test_semantic_problems_across_two_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "1-nets.yaml").write_text(
        y("""
        apiVersion: netctl/v1
        kind: Network
        metadata: {name: front}
        spec:
          ipam:
            config:
              - subnet: 10.10.0.0/16
        """)
    )
    (tmp_path / "2-apps.yaml").write_text(
        y("""
        apiVersion: netctl/v1
        kind: Network
        metadata: {name: back}
        spec:
          ipam:
            config:
              - subnet: 10.10.5.0/24
        ---
        apiVersion: netctl/v1
        kind: Container
        metadata: {name: app}
        spec:
          networks: [front, missing]
        """)
    )
    with pytest.raises(ManifestError) as info:
        load.build_spec(load.parse_paths([str(tmp_path)]), BUILTIN)
    nets, apps = tmp_path / "1-nets.yaml", tmp_path / "2-apps.yaml"
    assert [str(p) for p in info.value.problems] == [
        f"{apps}:7 spec.ipam.config[0].subnet: subnet 10.10.5.0/24 overlaps with subnet "
        f"10.10.0.0/16 of network front ({nets}:7)",
        f"{apps}:13 spec.networks[1]: network missing not found",
    ]


def test_control_characters_are_a_problem_with_a_line() -> None:
    assert problems("apiVersion: netctl/v1\nkind: Network\x07\n") == [
        "t.yaml:2: YAML syntax error: control characters are not allowed (#x0007)"
    ]


def test_unreadable_bytes_are_a_problem_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"apiVersion: netctl/v1\nkind: \xff\n")
    with pytest.raises(ManifestError) as info:
        load.parse_paths([str(path)])
    (problem,) = info.value.problems
    assert (problem.line, problem.message.startswith("not UTF-8 text")) == (2, True)


# --------------------------------------------------------------------------- YAML


def test_yaml_syntax_error_has_its_line() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata:
      name: [a
    """
    (problem,) = problems(text)
    assert problem.startswith("t.yaml:5: YAML syntax error:")


def test_documents_before_a_syntax_error_are_still_checked() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Netwrk
    metadata: {name: a}
    ---
    a: : b
    """
    found = problems(text)
    assert (
        found[0]
        == "t.yaml:2 kind: unknown kind 'Netwrk': expected Network or Container (did you mean 'Network'?)"
    )
    assert found[1].startswith("t.yaml:5: YAML syntax error")


def test_duplicate_keys_are_problems() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: a}
    spec:
      internal: true
      internal: false
    """
    assert problems(text) == ["t.yaml:6 spec.internal: duplicate key (first at line 5)"]


def test_unsupported_tags_and_recursive_aliases_are_problems() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: !secret a}
    """
    assert problems(text) == [
        "t.yaml:3 metadata.name: unsupported YAML tag !secret",
        "t.yaml:3 metadata.name: null is not of type 'string'",
    ]


def test_aliases_of_merged_mappings_are_not_duplicate_keys() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata:
      name: n
      labels: &more
        <<: {a: "1"}
        a: "2"
    spec:
      options: *more
    """
    n = spec_of(text).network("n")
    assert n is not None and n.labels == n.options == {"a": "2"}


def test_merge_keys_and_anchors_work() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata:
      name: b
      labels: &common
        com.docker.network.driver.mtu: 1400
        com.docker.network.bridge.enable_icc: true
    spec:
      options:
        <<: *common
        com.docker.network.bridge.enable_icc: false
    """
    b = spec_of(text).network("b")
    assert b is not None
    assert b.options == {
        "com.docker.network.driver.mtu": "1400",
        "com.docker.network.bridge.enable_icc": "false",
    }


def test_lines_map_every_path_to_its_line() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Container
    metadata:
      name: web
    spec:
      networks:
        - bridge
        - name: front
          ipv4Address: 10.0.0.5
      ports:
        - "8080:80"
    """
    (doc,) = load.parse_text(y(text), "t.yaml")
    assert doc.lines[""] == 1
    assert doc.lines["metadata.name"] == 4
    assert doc.lines["spec.networks"] == 6
    assert doc.lines["spec.networks[0]"] == 7
    assert doc.lines["spec.networks[1]"] == 8
    assert doc.lines["spec.networks[1].ipv4Address"] == 9
    assert doc.lines["spec.ports[0]"] == 11
    assert doc.source == Source("t.yaml", 1)


def test_path_helpers() -> None:
    assert yamlsource.child_path("", "spec") == "spec"
    assert yamlsource.child_path("spec", "ports") == "spec.ports"
    assert yamlsource.child_path("spec.ports", 1) == "spec.ports[1]"
    dotted = yamlsource.child_path("spec.options", "com.docker.network.driver.mtu")
    assert dotted == 'spec.options["com.docker.network.driver.mtu"]'
    assert yamlsource.parent_path(dotted) == "spec.options"
    assert yamlsource.parent_path("spec.ports[1]") == "spec.ports"
    assert yamlsource.parent_path("spec") == ""
    assert yamlsource.parent_path("") is None
    lines = {"": 1, "spec": 5, "spec.ports": 6}
    assert yamlsource.line_of(lines, "spec.ports[3].hostPort") == 6


def test_sexagesimal_looking_ports_stay_port_mappings() -> None:
    text = container("""
        ports:
          - 22:22
    """)
    c = spec_of(text).container("c")
    assert c is not None and c.ports == (PortSpec(22, 22),)


def test_options_and_labels_accept_bools_and_ints_as_strings() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata:
      name: n
      labels: {tier: 1, public: true, team: web}
    spec:
      options:
        com.docker.network.bridge.enable_icc: false
        com.docker.network.driver.mtu: 9000
    """
    n = spec_of(text).network("n")
    assert n is not None
    assert n.options == {
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.driver.mtu": "9000",
    }
    assert n.labels == {"tier": "1", "public": "true", "team": "web"}


# --------------------------------------------------------------------------- schema problems


def test_envelope_problems() -> None:
    text = """
    apiVersion: v1
    kind: Network
    metadata:
      labels: {}
    ---
    kind: Pod
    ---
    - just a list
    """
    assert problems(text) == [
        "t.yaml:1 apiVersion: expected 'netctl/v1', got 'v1'",
        "t.yaml:3 metadata: missing required field 'name'",
        "t.yaml:6 kind: unknown kind 'Pod': expected Network or Container",
        "t.yaml:6 apiVersion: expected 'netctl/v1', got null",
        "t.yaml:6 metadata: missing required field 'name'",
        "t.yaml:8: a manifest must be a mapping (apiVersion, kind, metadata, spec), got a list",
    ]


def test_unknown_fields_are_caught_with_a_suggestion() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata:
      name: n
      lables: {}
    spec:
      enableIpv6: true
    """
    assert problems(text) == [
        "t.yaml:5 metadata.lables: unknown field 'lables' (did you mean 'labels'?)",
        "t.yaml:7 spec.enableIpv6: unknown field 'enableIpv6' (did you mean 'enableIPv6'?)",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 64, f"'{'a' * 64}' is too long (at most 63 characters)"),
        (
            "-web",
            "'-web' is not a valid name: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit",
        ),
        (
            "web\n",
            "'web\\n' is not a valid name: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit",
        ),
        (
            "my web",
            "'my web' is not a valid name: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit",
        ),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    text = f"apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: {json.dumps(name)}\n"
    assert problems(text) == [f"t.yaml:4 metadata.name: {message}"]


def test_longest_name_is_accepted() -> None:
    name = "a" * 63
    assert spec_of(f"apiVersion: netctl/v1\nkind: Container\nmetadata:\n  name: {name}\n").container(name)


def test_type_errors_are_reported_once_per_node() -> None:
    text = container("""
        networks:
          - 5
        ports:
          - [80]
        hostname: web_1
    """)
    assert problems(text) == [
        "t.yaml:7 spec.networks[0]: 5 is not of type 'string' or 'mapping'",
        "t.yaml:9 spec.ports[0]: a list is not of type 'string', 'integer' or 'mapping'",
        "t.yaml:10 spec.hostname: 'web_1' is not a valid hostname: use dot-separated labels of letters, "
        "digits and '-', at most 63 characters each",
    ]


def test_string_formats_are_checked_where_written() -> None:
    text = container("""
        networks:
          - name: front
            ipv4Address: 10.0.0.300
            ipv6Address: 10.0.0.1
        expose: [80, "53/udp", "x"]
        links: ["a:b:c"]
        extraHosts: ["db:10.0.0.2", "nocolon"]
        dns: [1.1.1.1, resolver]
    """)
    assert problems(text) == [
        "t.yaml:8 spec.networks[0].ipv4Address: '10.0.0.300' is not a valid IPv4 address",
        "t.yaml:9 spec.networks[0].ipv6Address: '10.0.0.1' is not a valid IPv6 address",
        "t.yaml:10 spec.expose[2]: 'x' is not a valid port or port range (e.g. 80 or 9000-9002)",
        't.yaml:11 spec.links[0]: \'a:b:c\' is not a valid link: expected "name" or "name:alias"',
        "t.yaml:12 spec.extraHosts[1]: 'nocolon' is not a valid extra host: expected \"host:ip\"",
        "t.yaml:13 spec.dns[1]: 'resolver' is not a valid IP address",
    ]


def test_network_schema_problems() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: n}
    spec:
      driver: Bridge
      internal: "yes"
      ipam:
        driver: dhcp
        config:
          - subnet: 10.0.0.1/24
            gateway: gw
            auxAddresses: {router: x}
    """
    assert problems(text) == [
        "t.yaml:5 spec.driver: 'Bridge' is not a valid driver name: use lowercase letters, digits, "
        "'_', '.' and '-'",
        "t.yaml:6 spec.internal: 'yes' is not of type 'boolean' (write true or false)",
        "t.yaml:8 spec.ipam.driver: expected 'default', got 'dhcp'",
        "t.yaml:10 spec.ipam.config[0].subnet: invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24",
        "t.yaml:11 spec.ipam.config[0].gateway: 'gw' is not a valid IP address",
        "t.yaml:12 spec.ipam.config[0].auxAddresses.router: 'x' is not a valid IP address",
    ]


def test_unsupported_ipam_driver() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: n}
    spec:
      ipam:
        driver: dhcp
    """
    assert problems(text) == ["t.yaml:6 spec.ipam.driver: expected 'default', got 'dhcp'"]


# --------------------------------------------------------------------------- ports


def test_port_out_of_range_names_line_and_index() -> None:
    text = container("""
        ports:
          - "8080:80"
          - "70000:80"
          - {hostPort: 8081, containerPort: 0}
          - "0:80"
    """)
    assert problems(text) == [
        "t.yaml:8 spec.ports[1]: 70000 is greater than the maximum of 65535",
        "t.yaml:9 spec.ports[2].containerPort: 0 is less than the minimum of 1",
        "t.yaml:10 spec.ports[3]: 0 is less than the minimum of 1",
    ]


def test_host_port_is_required() -> None:
    text = container("""
        ports:
          - "80"
          - 443
          - "127.0.0.1::53/udp"
          - {containerPort: 80}
    """)
    assert problems(text) == [
        "t.yaml:7 spec.ports[0]: '80' has no host port: a host port is required (e.g. \"80:80\")",
        "t.yaml:8 spec.ports[1]: '443' has no host port: a host port is required (e.g. \"443:443\")",
        "t.yaml:9 spec.ports[2]: '127.0.0.1::53/udp' has no host port: a host port is required "
        '(e.g. "53:53")',
        "t.yaml:10 spec.ports[3]: missing required field 'hostPort': a host port is required "
        "(ephemeral host ports are not supported yet)",
    ]


def test_port_forms_become_port_specs() -> None:
    text = container("""
        ports:
          - "8080:80"
          - "127.0.0.1:5353:53/udp"
          - "9000-9002:9000-9002/tcp"
          - "[::1]:8443:443"
          - {hostIP: "::", hostPort: 2000, containerPort: 20, protocol: sctp}
          - {hostPort: "7000-7001", containerPort: "70-71"}
        expose: [80, "53/udp", "8000-8001"]
    """)
    c = spec_of(text).container("c")
    assert c is not None
    assert c.ports == (
        PortSpec(80, 8080),
        PortSpec(53, 5353, "127.0.0.1", Protocol.UDP),
        PortSpec(9000, 9000),
        PortSpec(9001, 9001),
        PortSpec(9002, 9002),
        PortSpec(443, 8443, "::1"),
        PortSpec(20, 2000, "::", Protocol.SCTP),
        PortSpec(70, 7000),
        PortSpec(71, 7001),
    )
    assert c.expose == ((80, Protocol.TCP), (53, Protocol.UDP), (8000, Protocol.TCP), (8001, Protocol.TCP))


def test_bad_port_strings() -> None:
    text = container("""
        ports:
          - "9000-9002:80"
          - "8080:80/icmp"
          - "::1:8080:80"
          - "9002-9000:9002-9000"
          - {hostPort: "7000-7002", containerPort: "70-71"}
          - "300.0.0.1:80:80"
    """)
    assert problems(text) == [
        "t.yaml:7 spec.ports[0]: host port range 9000-9002 and container port range 80 must have "
        "the same length",
        "t.yaml:8 spec.ports[1]: unknown protocol 'icmp': expected tcp, udp or sctp",
        "t.yaml:9 spec.ports[2]: '::1:8080:80': write an IPv6 host IP in brackets, e.g. [::1]:8080:80",
        "t.yaml:10 spec.ports[3]: invalid port range 9002-9000: 9002 is greater than 9000",
        "t.yaml:11 spec.ports[4]: host port range 7000-7002 and container port range 70-71 "
        "must have the same length",
        "t.yaml:12 spec.ports[5]: '300.0.0.1' is not a valid IP address",
    ]


# --------------------------------------------------------------------------- conversion


def test_a_topology_becomes_a_spec() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: front, labels: {env: test}}
    spec:
      enableIPv6: true
      attachable: true
      ipam:
        config:
          - subnet: 10.20.0.0/16
            gateway: 10.20.0.1
            ipRange: 10.20.1.0/24
            auxAddresses: {router: 10.20.0.2}
          - subnet: "fd00:0:0:1::/64"
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: db}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: web}
    spec:
      hostname: www
      networks:
        - name: front
          ipv4Address: 10.20.1.10
          ipv6Address: "fd00:0:0:1::10"
          aliases: [site]
        - bridge
      links: ["db:database", db]
      dns: [1.1.1.1]
      dnsSearch: [example.com]
      dnsOptions: ["ndots:2"]
      extraHosts: ["gw:10.0.0.1", "v6:fd00::1", "b:[::2]"]
    """
    spec = spec_of(text)
    assert [n.name for n in spec.networks] == ["bridge", "host", "none", "front"]
    front = spec.network("front")
    assert front is not None and not front.builtin and front.enable_ipv6 and front.attachable
    assert front.labels == {"env": "test"}
    assert front.ipam[0].aux_addresses == {"router": "10.20.0.2"}
    assert front.ipam[1].subnet == "fd00:0:0:1::/64"
    assert front.source == Source("t.yaml", 1)
    db, web = spec.containers
    assert db.networks == (Attachment("bridge"),) and db.source == Source("t.yaml", 15)
    assert web.hostname == "www"
    assert web.networks == (
        Attachment("front", "10.20.1.10", "fd00:0:0:1::10", ("site",)),
        Attachment("bridge"),
    )
    assert web.links == (Link("db", "database"), Link("db", "db"))
    assert web.dns == ("1.1.1.1",) and web.dns_search == ("example.com",) and web.dns_options == ("ndots:2",)
    assert web.extra_hosts == (("gw", "10.0.0.1"), ("v6", "fd00::1"), ("b", "::2"))


def test_overlay_is_accepted_and_an_unknown_driver_is_a_validation_error() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: multi}
    spec: {driver: overlay, attachable: true}
    """
    spec = spec_of(text)
    assert [(n.name, n.driver) for n in spec.networks[3:]] == [("multi", "overlay")]
    woven = "apiVersion: netctl/v1\nkind: Network\nmetadata: {name: woven}\nspec: {driver: weave}\n"
    assert problems(woven) == [
        "t.yaml:4 spec.driver: unknown network driver 'weave': the built-in drivers are bridge, host, "
        "none, overlay; no driver plugins were found"]


def test_documents_from_the_store_without_lines_use_the_document_line() -> None:
    body = {
        "apiVersion": "netctl/v1",
        "kind": "Container",
        "metadata": {"name": "c"},
        "spec": {"networks": ["x"]},
    }
    doc = Document("Container", "c", body, Source("store.yaml", 7))
    with pytest.raises(ManifestError) as info:
        load.build_spec([doc], BUILTIN)
    assert [str(p) for p in info.value.problems] == ["store.yaml:7 spec.networks[0]: network x not found"]


def test_build_spec_revalidates_documents() -> None:
    body = {
        "apiVersion": "netctl/v1",
        "kind": "Container",
        "metadata": {"name": "c"},
        "spec": {"ports": ["80"]},
    }
    with pytest.raises(ManifestError, match="a host port is required"):
        load.build_spec([Document("Container", "c", body, Source("store", 3))], BUILTIN)


# --------------------------------------------------------------------------- checks across documents


def test_duplicate_names_name_both_places(tmp_path: Path) -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: same}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: same}
    ---
    apiVersion: netctl/v1
    kind: Network
    metadata:
      name: same
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: same}
    """
    assert problems(text) == [
        "t.yaml:12 metadata.name: duplicate Network 'same': already defined at t.yaml:1",
        "t.yaml:16 metadata.name: duplicate Container 'same': already defined at t.yaml:5",
    ]


@pytest.mark.parametrize("name", ["bridge", "host", "none"])
def test_predefined_networks_cannot_be_redefined(name: str) -> None:
    text = f"apiVersion: netctl/v1\nkind: Network\nmetadata:\n  name: {name}\n"
    assert problems(text) == [
        f"t.yaml:4 metadata.name: {name} is a pre-defined network and cannot be redefined"
    ]


def test_only_one_host_network() -> None:
    text = "apiVersion: netctl/v1\nkind: Network\nmetadata: {name: h2}\nspec:\n  driver: host\n"
    assert problems(text) == ["t.yaml:5 spec.driver: only one instance of 'host' network is allowed"]


def test_unknown_network_and_twice_listed_network() -> None:
    text = container("""
        networks: [bridge, brdge, bridge]
    """)
    assert problems(text) == [
        "t.yaml:6 spec.networks[1]: network brdge not found (did you mean 'bridge'?)",
        "t.yaml:6 spec.networks[2]: network bridge is listed twice (also spec.networks[0])",
    ]


@pytest.mark.parametrize("isolated", ["host", "none"])
def test_host_and_none_are_exclusive(isolated: str) -> None:
    text = container(f"""
        networks:
          - bridge
          - {isolated}
    """)
    assert problems(text) == [
        f"t.yaml:6 spec.networks: a container on network {isolated} cannot be connected to other networks"
    ]


NETWORKS = y("""
apiVersion: netctl/v1
kind: Network
metadata: {name: front}
spec:
  ipam:
    config:
      - subnet: 10.1.0.0/24
        gateway: 10.1.0.254
        ipRange: 10.1.0.128/25
        auxAddresses: {router: 10.1.0.200}
---
apiVersion: netctl/v1
kind: Network
metadata: {name: auto}
spec:
  ipam:
    config:
      - subnet: 10.3.0.0/24
---
apiVersion: netctl/v1
kind: Network
metadata: {name: pooled}
---
""")  # 23 lines: the documents of each test start at line 24


def test_static_addresses_must_be_free_and_inside_the_subnet() -> None:
    text = NETWORKS + y("""
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: c}
    spec:
      networks:
        - {name: front, ipv4Address: 10.1.0.5}
        - {name: pooled, ipv4Address: 10.2.0.5}
        - {name: auto, ipv4Address: 10.3.0.1}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: d}
    spec:
      networks:
        - {name: front, ipv4Address: 10.1.0.254}
        - {name: auto, ipv4Address: 10.3.0.255}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: e}
    spec:
      networks:
        - {name: front, ipv4Address: 10.1.0.200}
        - {name: auto, ipv4Address: 10.4.0.1}
    """)
    assert problems(text) == [  # 10.1.0.5 is outside ipRange but in the subnet: fine (Docker)
        "t.yaml:30 spec.networks[1].ipv4Address: user specified IP address is supported only when connecting "
        "to networks with user configured subnets",
        "t.yaml:31 spec.networks[2].ipv4Address: address 10.3.0.1 is the gateway of network auto",
        "t.yaml:38 spec.networks[0].ipv4Address: address 10.1.0.254 is the gateway of network front",
        "t.yaml:39 spec.networks[1].ipv4Address: address 10.3.0.255 is not usable: it is the network or "
        "broadcast address of 10.3.0.0/24",
        "t.yaml:46 spec.networks[0].ipv4Address: address 10.1.0.200 is reserved as auxAddress "
        "router of network "
        "front",
        "t.yaml:47 spec.networks[1].ipv4Address: no configured subnet or ip-range contain the IP "
        "address 10.4.0.1",
    ]


def test_a_static_address_is_taken_once_per_network() -> None:
    text = NETWORKS + y("""
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: c}
    spec:
      networks: [{name: front, ipv4Address: 10.1.0.130}]
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: d}
    spec:
      networks:
        - {name: auto, ipv4Address: 10.3.0.130}
        - {name: front, ipv4Address: 10.1.0.130}
    """)
    assert problems(text) == [
        "t.yaml:36 spec.networks[1].ipv4Address: address 10.1.0.130 on network front is already assigned "
        "to container c (t.yaml:28)",
    ]


def test_no_static_address_or_alias_on_the_default_bridge() -> None:
    text = container("""
        networks:
          - name: bridge
            ipv4Address: 172.17.0.9
            aliases: [x]
    """)
    assert problems(text) == [
        "t.yaml:8 spec.networks[0].ipv4Address: user specified IP address is supported on user "
        "defined networks only",
        "t.yaml:9 spec.networks[0].aliases: network-scoped alias is supported only for containers in user "
        "defined networks",
    ]


def test_ipv6_address_needs_enable_ipv6() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: v6}
    spec:
      enableIPv6: true
      ipam: {config: [{subnet: "fd00:1::/64"}, {subnet: 10.4.0.0/24}]}
    ---
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: v4}
    spec:
      ipam: {config: [{subnet: 10.5.0.0/24}]}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: c}
    spec:
      networks:
        - {name: v6, ipv6Address: "fd00:1::10", ipv4Address: 10.4.0.10}
        - {name: v4, ipv6Address: "fd00:2::10"}
    """
    assert problems(text) == [
        "t.yaml:20 spec.networks[1].ipv6Address: an IPv6 address needs enableIPv6: true on network v4"
    ]


def test_ipam_config_checks() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: n}
    spec:
      enableIPv6: true
      ipam:
        config:
          - subnet: 10.6.0.0/24
            gateway: 10.7.0.1
            ipRange: 10.6.0.0/23
            auxAddresses: {far: 10.8.0.1}
          - gateway: 10.6.0.1
    ---
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: m}
    spec:
      ipam: {config: [{subnet: "fd00:3::/64"}]}
    """
    assert problems(text) == [
        "t.yaml:5 spec.enableIPv6: enableIPv6 requires an IPv6 subnet in ipam.config",
        "t.yaml:9 spec.ipam.config[0].gateway: gateway 10.7.0.1 is not in subnet 10.6.0.0/24",
        "t.yaml:10 spec.ipam.config[0].ipRange: ipRange 10.6.0.0/23 is not inside subnet 10.6.0.0/24",
        "t.yaml:11 spec.ipam.config[0].auxAddresses.far: auxAddress far (10.8.0.1) is not in "
        "subnet 10.6.0.0/24",
        "t.yaml:12 spec.ipam.config[1]: gateway, ipRange and auxAddresses need a subnet in the same entry",
        "t.yaml:18 spec.ipam.config[0].subnet: IPv6 subnet fd00:3::/64 requires enableIPv6: true",
    ]


def test_overlapping_subnets_name_both_networks() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: a}
    spec:
      ipam:
        config:
          - subnet: 172.17.3.0/24
    """
    assert problems(text) == [
        "t.yaml:7 spec.ipam.config[0].subnet: subnet 172.17.3.0/24 overlaps with subnet 172.17.0.0/16 "
        f"of network bridge ({load.BUILTIN_FILE}:12)"
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("br-0123456789abc", "device name 'br-0123456789abc' must be 1 to 15 bytes long, it is 16"),
        ("brücke-12345678", "device name 'brücke-12345678' must be 1 to 15 bytes long, it is 16"),
        ("", "device name '' must be 1 to 15 bytes long, it is 0"),
        *[(name, f"device name {name!r} may contain only ASCII letters, digits, '_', '.' and '-', "
                 "starting with a letter or digit")
          for name in ["br/0", "br 0", "br%d", "br%x", 'br"x', "b+", "br!", "br:0", "-br", ".", "..",
                       '"netctl0"', "brücke", "br\x00", "br\u00a0x", "br#1", "br\tx"]],
        *[(name, f"device name {name!r} is reserved by the kernel") for name in ["all", "default", "lo"]],
        *[(name, f"device name {name!r} has the form of a name netctl gives its own devices")
          for name in ["br-0123456789ab", "vethdeadbeef", "vx-0123456789ab", "netctl_gwbridge"]],
    ],
)
def test_bad_bridge_names(name: str, message: str) -> None:
    text = f"""
    apiVersion: netctl/v1
    kind: Network
    metadata: {{name: n}}
    spec:
      options:
        com.docker.network.bridge.name: {json.dumps(name)}
    """
    assert problems(text) == [f't.yaml:6 spec.options["com.docker.network.bridge.name"]: {message}']


def test_bridge_name_fifteen_bytes_is_fine() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: n}
    spec: {options: {com.docker.network.bridge.name: br-0123456789xy}}
    """
    assert spec_of(text).network("n") is not None
    dotted = text.replace("br-0123456789xy", "br.lan_1-x")
    assert spec_of(dotted).network("n") is not None


def test_two_networks_with_one_bridge_name() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: a}
    spec:
      options: {com.docker.network.bridge.name: netctl0}
    """
    assert problems(text) == [
        "t.yaml:5 spec.options[\"com.docker.network.bridge.name\"]: bridge name 'netctl0' is already used "
        f"by network bridge ({load.BUILTIN_FILE}:15)"
    ]


@pytest.mark.parametrize("mtu", ["67", "65536", "abc", "1.5", "", "１５００"])
def test_mtu_must_be_an_integer_in_range(mtu: str) -> None:
    text = f"""
    apiVersion: netctl/v1
    kind: Network
    metadata: {{name: n}}
    spec:
      options:
        com.docker.network.driver.mtu: {json.dumps(mtu)}
    """
    assert problems(text) == [
        f't.yaml:6 spec.options["com.docker.network.driver.mtu"]: MTU must be an integer between '
        f"68 and 65535, "
        f"got {mtu!r}"
    ]


def test_other_option_values() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: n}
    spec:
      options:
        com.docker.network.driver.mtu: 68
        com.docker.network.bridge.enable_icc: maybe
        com.docker.network.bridge.host_binding_ipv4: "::"
    """
    assert problems(text) == [
        "t.yaml:7 spec.options[\"com.docker.network.bridge.enable_icc\"]: must be true or false, got 'maybe'",
        "t.yaml:8 spec.options[\"com.docker.network.bridge.host_binding_ipv4\"]: '::' is not a "
        "valid IPv4 address",
    ]


def test_links() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: user}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: db}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: app}
    spec:
      networks: [user]
      links: ["db:database", ghost, app]
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: h}
    spec:
      networks: [host]
      links: [db]
    """
    assert problems(text) == [
        "t.yaml:14 spec.links[1]: link to unknown container ghost",
        "t.yaml:14 spec.links[2]: a container cannot link to itself",
        "t.yaml:21 spec.links[0]: conflicting options: host type networking can't be used with links",
    ]


def test_link_from_a_user_network_is_allowed() -> None:
    text = manifest(network("user"), container_doc("db", "user"),
                    container_doc("app", "user", links=["db:database"]))
    app = spec_of(text).container("app")
    assert app is not None and app.links == (Link("db", "database"),)


def test_publishing_needs_a_network_that_can_publish() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: private}
    spec: {internal: true}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: a}
    spec:
      networks: [private]
      ports: ["8080:80"]
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: b}
    spec:
      networks: [host]
      ports: ["8081:80"]
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: c}
    spec:
      networks: [none]
      ports: ["8082:80"]
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: d}
    spec:
      networks: [private, bridge]
      ports: ["8083:80"]
    """
    assert problems(text) == [
        "t.yaml:11 spec.ports: cannot publish ports on an internal network",
        "t.yaml:18 spec.ports: cannot publish ports on network host (driver host)",
        "t.yaml:25 spec.ports: cannot publish ports on network none (driver none)",
    ]


def test_port_conflicts_name_both_places() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: a}
    spec:
      ports:
        - "8080:80"
        - "127.0.0.1:53:53/udp"
        - "[::1]:9000:9000"
        - "7000-7002:7000-7002"
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: b}
    spec:
      ports:
        - "127.0.0.1:8080:80"
        - "127.0.0.2:53:53/udp"
        - "53:53/tcp"
        - "127.0.0.1:9000:9000"
        - "[::]:9000:9001"
        - "7002:7002"
        - "7002:80"
    """
    assert problems(text) == [
        "t.yaml:16 spec.ports[0]: host port 127.0.0.1:8080/tcp is already published by container a "
        "(t.yaml:6 spec.ports[0])",
        "t.yaml:20 spec.ports[4]: host port [::]:9000/tcp is already published by container a "
        "(t.yaml:8 spec.ports[2])",
        "t.yaml:21 spec.ports[5]: host port 0.0.0.0:7002/tcp is already published by container a "
        "(t.yaml:9 spec.ports[3])",
        "t.yaml:22 spec.ports[6]: host port 0.0.0.0:7002/tcp is already published by container a "
        "(t.yaml:9 spec.ports[3])",
        "t.yaml:22 spec.ports[6]: host port 0.0.0.0:7002/tcp is already published by container b "
        "(t.yaml:21 spec.ports[5])",
    ]


def test_host_binding_option_decides_where_unaddressed_ports_listen() -> None:
    text = """
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: local}
    spec:
      options: {com.docker.network.bridge.host_binding_ipv4: 127.0.0.1}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: a}
    spec: {networks: [local], ports: ["8080:80"]}
    ---
    apiVersion: netctl/v1
    kind: Container
    metadata: {name: b}
    spec: {ports: ["127.0.0.2:8080:80"]}
    """
    assert len(spec_of(text).containers) == 2


# --------------------------------------------------------------------------- properties

_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
SPEC_FIELDS = ["ports", "networks", "expose", "links", "dns", "extraHosts", "hostname", "dnsSearch"]
NETWORK_FIELDS = ["driver", "ipam", "options", "internal", "enableIPv6"]


def _outcome(text: str) -> Spec | ManifestError:
    """Either a Spec or a ManifestError whose problems all have a line: nothing else."""
    try:
        return spec_of(text)
    except ManifestError as exc:
        assert exc.problems
        assert all(p.line > 0 and p.file == "t.yaml" for p in exc.problems), exc
        return exc


@_SETTINGS
@given(st.lists(st.one_of(st.integers(-10, 70000), st.text(max_size=20)), min_size=1, max_size=4))
def test_any_port_value_gives_port_specs_or_located_problems(ports: list[int | str]) -> None:
    text = container(yaml.safe_dump({"ports": ports}))
    outcome = _outcome(text)
    if isinstance(outcome, ManifestError):
        assert all(p.path.startswith("spec.ports") for p in outcome.problems), outcome


@_SETTINGS
@given(st.sampled_from(SPEC_FIELDS), yaml_values)
def test_any_container_field_value_is_handled(field: str, value: object) -> None:
    _outcome(container(yaml.safe_dump({field: value})))


@_SETTINGS
@given(st.sampled_from(NETWORK_FIELDS), yaml_values)
def test_any_network_field_value_is_handled(field: str, value: object) -> None:
    spec = textwrap.indent(yaml.safe_dump({field: value}), "  ")
    _outcome(f"apiVersion: netctl/v1\nkind: Network\nmetadata:\n  name: n\nspec:\n{spec}")


@_SETTINGS
@given(st.text(max_size=200))
def test_any_text_is_handled(text: str) -> None:
    try:
        load.build_spec(load.parse_text(text, "t.yaml"), BUILTIN)
    except ManifestError as exc:
        assert all(p.file == "t.yaml" and p.line > 0 for p in exc.problems), exc


port_numbers = st.integers(1, 65535)


@st.composite
def port_mappings(draw: st.DrawFn) -> tuple[str, list[PortSpec]]:
    """A valid `-p` string and the PortSpecs it stands for."""
    length = draw(st.integers(1, 4))
    host = draw(st.integers(1, 65536 - length))
    inner = draw(st.integers(1, 65536 - length))
    protocol = draw(st.sampled_from([None, *Protocol]))
    ip = draw(st.sampled_from([None, "127.0.0.1", "0.0.0.0", "::1", "fd00::5"]))

    def ports(first: int) -> str:
        return str(first) if length == 1 else f"{first}-{first + length - 1}"

    text = f"{ports(host)}:{ports(inner)}"
    if ip is not None:
        text = f"[{ip}]:{text}" if ":" in ip else f"{ip}:{text}"
    if protocol is not None:
        text += f"/{protocol.value}"
    expected = [PortSpec(inner + i, host + i, ip, protocol or Protocol.TCP) for i in range(length)]
    return text, expected


@_SETTINGS
@given(port_mappings())
def test_valid_port_strings_round_trip(mapping: tuple[str, list[PortSpec]]) -> None:
    text, expected = mapping
    assert list(load.parse_port_mapping(text)) == expected
    c = spec_of(container(yaml.safe_dump({"ports": [text]}))).container("c")
    assert c is not None and list(c.ports) == expected


@_SETTINGS
@given(st.integers(65536, 10**12) | st.integers(-(10**6), 0), port_numbers)
def test_out_of_range_ports_are_reported_like_the_schema(bad: int, good: int) -> None:
    text = container(yaml.safe_dump({"ports": [f"{good}:{good}", f"{bad}:{good}"]}))
    if bad < 0:  # "-5:80" is not a port at all
        return
    problem = problems(text)
    expected = f"{bad} is greater than the maximum of 65535" if bad else "0 is less than the minimum of 1"
    assert problem == [f"t.yaml:8 spec.ports[1]: {expected}"]


def test_yaml_1_1_booleans_are_the_words_written() -> None:
    text = y("""
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: n, labels: {country: no, ok: yes, flag: true}}
    """)
    net = spec_of(text).network("n")
    assert net is not None and dict(net.labels) == {"country": "no", "ok": "yes", "flag": "true"}
    bad = y("""
    apiVersion: netctl/v1
    kind: Network
    metadata: {name: n}
    spec: {internal: yes}
    """)
    assert problems(bad) == ["t.yaml:4 spec.internal: 'yes' is not of type 'boolean' (write true or false)"]


def test_a_valid_document_is_checked_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.load import schema

    calls: list[str] = []
    real = schema._schema_problems

    def counting(validator: object, doc: Document) -> list[object]:
        calls.append(doc.name)
        return real(validator, doc)  # type: ignore[arg-type]

    monkeypatch.setattr(schema, "_schema_problems", counting)
    monkeypatch.setattr(schema, "_VALID", set())
    good, = load.parse_text(container_doc("once", "bridge", ports=["8080:80"]), "a.yaml")
    assert load.validate_document(good) == [] and calls == ["once"]  # parse_text checked it
    bad = Document("Container", "bad", yaml.safe_load(container_doc("bad", "bridge", ports=["x"])),
                   Source("b.yaml", 1))
    assert load.validate_document(bad) != [] and load.validate_document(bad) != []
    assert calls == ["once", "bad", "bad"]  # a document with problems: checked every time
    changed = Document("Container", "once", {**good.body, "spec": {"networks": ["none"]}}, good.source)
    assert load.validate_document(changed) == [] and calls[-1] == "once"  # another body: checked
    assert len(calls) == 4
