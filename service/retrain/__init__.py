"""Retraining (CONTRACT §4): when to start a model's pipeline, and getting the request there.

* :mod:`~service.retrain.triggers`: the policies (signals, consecutive windows, cooldown)
  and :class:`~service.retrain.triggers.TriggerManager`, the component that raises triggers.
* :mod:`~service.retrain.alerts`: Alertmanager's alerts as requests for triggers.
* :mod:`~service.retrain.evidence`: what a trigger carries, read off the engine, and its
  MLflow run.
* :mod:`~service.retrain.payload`: the ``driftline.retrain.requested`` payload.
* :mod:`~service.retrain.signing`: Standard Webhooks signatures (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature``).
* :mod:`~service.retrain.presets`: the registry of presets, each shaping the request for the
  API it targets (Airflow, GitHub, GitLab, Jenkins, Kubeflow, Argo, or the payload as is);
  the configuration's preset names come from it.
* :mod:`~service.retrain.credentials`: a target's secrets, read from the environment once,
  and their redaction from anything logged or stored.
* :mod:`~service.retrain.outbox`: the durable SQLite record of every trigger and delivery.
* :mod:`~service.retrain.dispatcher`: one delivery thread per target, with retries.

This package imports nothing at its own import, so that :mod:`service.config` can read the
preset registry without loading the HTTP client.
"""
