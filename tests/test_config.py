import pytest

from service.config import ConfigError, Settings, load_settings


def write(tmp_path, text):
    path = tmp_path / "driftline.yaml"
    path.write_text(text)
    return path


def test_no_config_gives_http_only_defaults():
    settings = load_settings(None, environ={})
    assert settings.kafka is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    model = settings.model("anything")
    assert model.reference.first_n == 1000
    assert (model.window.size, model.window.step) == (1000, 100)


def test_named_model_inherits_default_keys(tmp_path):
    path = write(tmp_path, """
models:
  default: {window: {size: 500, step: 50}, drift: {drift_share: 0.3}}
  fraud: {window: {size: 5000}, reference: {path: ref.csv}}
""")
    settings = load_settings(path, environ={})
    fraud = settings.model("fraud")
    assert (fraud.window.size, fraud.window.step) == (5000, 50)
    assert fraud.drift.drift_share == 0.3
    assert fraud.reference.path == "ref.csv" and fraud.reference.first_n is None
    assert settings.model("other").window.size == 500


def test_environment_overrides_nested_keys(tmp_path):
    path = write(tmp_path, "kafka: {bootstrap_servers: a:1}\n")
    settings = load_settings(path, environ={
        "DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS": "broker:9092",
        "DRIFTLINE_LIMITS__MAX_MODELS": "50",
        "DRIFTLINE_MODELS__DEFAULT__WINDOW__MAX_AGE": "1h",
        "DRIFTLINE_TOKEN": "not-a-config-key",
    })
    assert settings.kafka.bootstrap_servers == "broker:9092"
    assert settings.limits.max_models == 50
    assert settings.model("x").window.max_age == 3600


@pytest.mark.parametrize("text, key", [
    ("kafka: {bootstrap_server: x}\n", "kafka.bootstrap_server: unknown key"),
    ("limits: {max_models: many}\n", "limits.max_models"),
    ("models: {default: {window: {size: 1}}}\n", "models.default.window.size"),
    ("models: {m: {reference: {first_n: 100, path: r.csv}}}\n", "models.m.reference"),
    ("models: {m: {triggers: {webhook: nowhere}}}\n", "models.m.triggers.webhook"),
    ("checkpoint_interval: soon\n", "checkpoint_interval"),
])
def test_bad_keys_and_values_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text), environ={})
    assert key in str(error.value)


def test_bad_environment_value_is_named():
    with pytest.raises(ConfigError, match="limits.max_models"):
        load_settings(None, environ={"DRIFTLINE_LIMITS__MAX_MODELS": "lots"})


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [b"), environ={})


def test_the_shipped_example_config_is_valid():
    settings = load_settings("examples/driftline.yaml", environ={})
    assert settings.model("fraud").reference.mlflow == "models:/fraud/7"
    assert settings.model("fraud").triggers.on == ["data_drift", "performance_drop"]
    assert settings.kafka.topics == ["model-events"]


def test_yaml_on_is_a_key_not_a_boolean(tmp_path):
    settings = load_settings(write(tmp_path, "models: {default: {triggers: {on: [concept_drift]}}}\n"), environ={})
    assert settings.model("x").triggers.on == ["concept_drift"]


@pytest.mark.parametrize("name", ["DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS", "DRIFTLINE_STATEDIR", "DRIFTLINE_FOO"])
def test_an_unknown_driftline_variable_stops_start_up_naming_it(name):
    with pytest.raises(ConfigError, match=f"{name}: unknown variable"):
        load_settings(None, environ={name: "x"})


def test_variables_the_configuration_reads_by_name_are_not_unknown(tmp_path):
    path = write(tmp_path, """
auth: {token_env: DRIFTLINE_ADMIN}
webhooks:
  hook: {url: "http://x", secret_env: DRIFTLINE_HOOK_SECRET, auth: {bearer_env: DRIFTLINE_HOOK_TOKEN}}
""")
    environ = {name: "x" for name in ("DRIFTLINE_ADMIN", "DRIFTLINE_HOOK_SECRET", "DRIFTLINE_HOOK_TOKEN",
                                      "DRIFTLINE_INGEST_TOKEN", "DRIFTLINE_NATIVE_REQUIRED")}
    settings = load_settings(path, environ=environ)
    assert settings.auth.token_env == "DRIFTLINE_ADMIN"
    # Defaults of *_env keys are read by name even when their section is not configured yet.
    assert load_settings(None, environ={"DRIFTLINE_TOKEN": "t", "DRIFTLINE_WEBHOOK_SECRET": "s"}).webhooks == {}


def test_kubernetes_service_links_are_not_configuration():
    # What a pod gets for Services named driftline and driftline-prod in its namespace.
    links = {"DRIFTLINE_PORT": "tcp://10.0.0.1:8000", "DRIFTLINE_SERVICE_HOST": "10.0.0.1",
             "DRIFTLINE_SERVICE_PORT": "8000", "DRIFTLINE_SERVICE_PORT_HTTP": "8000",
             "DRIFTLINE_PORT_8000_TCP": "tcp://10.0.0.1:8000", "DRIFTLINE_PORT_8000_TCP_PROTO": "tcp",
             "DRIFTLINE_PORT_8000_TCP_PORT": "8000", "DRIFTLINE_PORT_8000_TCP_ADDR": "10.0.0.1",
             "DRIFTLINE_PROD_SERVICE_HOST": "10.0.0.2", "DRIFTLINE_PROD_PORT": "tcp://10.0.0.2:8000",
             "DRIFTLINE_PROD_PORT_8000_TCP": "tcp://10.0.0.2:8000"}
    settings = load_settings(None, environ=links)
    assert settings.port == Settings().port
    # DRIFTLINE_PORT with a port number is still the configuration key.
    assert load_settings(None, environ={"DRIFTLINE_PORT": "9001"}).port == 9001
    with pytest.raises(ConfigError, match="DRIFTLINE_PROD_HOST: unknown variable"):
        load_settings(None, environ={**links, "DRIFTLINE_PROD_HOST": "x"})


def test_the_cloudevents_keys_once_under_kafka_still_work_with_a_warning(tmp_path, caplog):
    path = write(tmp_path, "kafka: {cloudevents_ttl: 2m, cloudevents_max_pending: 500}\n")
    settings = load_settings(path, environ={})
    assert (settings.cloudevents.ttl, settings.cloudevents.max_pending) == (120.0, 500)
    assert "kafka.cloudevents_ttl is deprecated: use cloudevents.ttl" in caplog.text
    settings = load_settings(None, environ={"DRIFTLINE_KAFKA__CLOUDEVENTS_TTL": "45"})
    assert settings.cloudevents.ttl == 45.0 and settings.kafka is not None
    # The new key wins where both are set.
    path = write(tmp_path, "kafka: {cloudevents_ttl: 2m}\ncloudevents: {ttl: 5s}\n")
    assert load_settings(path, environ={}).cloudevents.ttl == 5.0


def test_drift_methods_are_auto_and_the_detectors_methods():
    from typing import get_args

    from detectors import METHODS
    from service.config import DriftConfig, StattestName

    assert get_args(StattestName) == ("auto", *METHODS)
    assert DriftConfig(method="kl_div", per_feature={"age": "psi"}).per_feature == {"age": "psi"}
    with pytest.raises(ValueError, match="'auto', 'ks'"):
        DriftConfig(method="energy")


def test_the_kafka_client_is_kafka_python_unless_one_of_the_clients_is_named():
    import typing

    from service.config import KafkaConfig
    from service.kafka.clients import CLIENTS

    assert KafkaConfig().client == "kafka-python"
    assert set(typing.get_args(KafkaConfig.model_fields["client"].annotation)) == set(CLIENTS)
    assert KafkaConfig(client="confluent").client == "confluent"
    with pytest.raises(ValueError, match="client"):
        KafkaConfig(client="aiokafka")
