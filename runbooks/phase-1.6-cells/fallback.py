# MODEL ROUTING FALLBACK: the first model of the list that answers through the pool
FALLBACK_MODELS = ["gpt-4-turbo", "gpt-35-turbo"]
answered_by, fallback_failures = None, []
for candidate in FALLBACK_MODELS:
    url = f"{apim_gateway_url}/{lb_api_path}/openai/deployments/{candidate}/chat/completions?api-version={chat_api_version}"
    status, body = post_json(url, {"messages": [{"role": "user", "content": "Say OK"}], "max_tokens": 5})
    if status != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        fallback_failures.append(f"{candidate}: HTTP {status} {error.get('code', '')}".rstrip())
    if status == 200:
        answered_by = candidate
        break
routing_fallback_enabled = answered_by is not None
if answered_by is None:
    print(f"[FALLBACK] ⚠️ No available model succeeded: {'; '.join(fallback_failures)}")
    print("[FALLBACK] routing fallback disabled: deploy one of FALLBACK_MODELS behind the pool, or list deployed models")
else:
    print(f"[FALLBACK] answered by {answered_by} ✅")
