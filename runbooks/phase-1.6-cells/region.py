# LOAD BALANCING: which region served each request through the backend pool
lb_api_path = os.environ.get("LB_API_PATH", "lb").strip("/")
lb_url = f"{apim_gateway_url}/{lb_api_path}/openai/deployments/gpt-4o-mini/chat/completions?api-version={chat_api_version}"


def post_json_with_headers(url, payload, timeout=60):
    """POST `payload` as JSON; return (HTTP status, parsed body, response headers)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "api-key": apim_api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, {"raw": error.read().decode("utf-8", errors="replace")}, dict(error.headers)


regions = []
for attempt in range(3):
    status, body, headers = post_json_with_headers(lb_url, {"messages": [{"role": "user", "content": f"Where are you? {attempt}"}], "max_tokens": 10})
    # the serving region is a response header of the gateway, set by the API's outbound policy
    lowered = {name.lower(): value for name, value in headers.items()}
    region = lowered.get("x-ms-region", "Unknown")
    regions.append(region)
    print(f"[lb] request {attempt + 1}: HTTP {status} region={region} backend={lowered.get('x-ms-backend-id', '?')}")
region_detection_enabled = any(region != "Unknown" for region in regions)
if region_detection_enabled:
    print(f"[lb] regions seen: {sorted(set(regions))} ✅")
else:
    print("[lb] ⚠️ region detection disabled: the gateway sends no x-ms-region header (add the outbound set-header policy)")
