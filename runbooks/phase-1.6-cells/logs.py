# LOG ANALYTICS: gateway requests logged in the last hour
workspace_id = os.environ.get("LOG_ANALYTICS_WORKSPACE_ID") or os.environ.get("LOG_ANALYTICS_WORKSPACE", "")
log_analytics_endpoint = os.environ.get("LOG_ANALYTICS_ENDPOINT", "https://api.loganalytics.io").rstrip("/")
la_url = f"{log_analytics_endpoint}/v1/workspaces/{workspace_id}/query"
status, body = post_json(la_url, {"query": "ApiManagementGatewayLogs | where TimeGenerated > ago(1h) | count"})
logs_enabled = status == 200
if not logs_enabled:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    print(f"[logs] ⚠️ Log Analytics disabled: {error.get('code')}: {error.get('message')} (LOG_ANALYTICS_WORKSPACE_ID must be the workspace's customerId)")
    gateway_log_count = 0
else:
    gateway_log_count = body["tables"][0]["rows"][0][0]
    if gateway_log_count:
        print(f"[logs] {gateway_log_count} gateway requests logged in the last hour ✅")
    else:
        print("[logs] ⚠️ no gateway logs yet: APIM sends no diagnostics to this workspace")
