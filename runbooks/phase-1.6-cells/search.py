# AZURE AI SEARCH: the indexes behind the retrieval demo
search_endpoint = os.environ.get("AZURE_SEARCH_ENDPOINT", "").rstrip("/")
search_request = urllib.request.Request(
    f"{search_endpoint}/indexes?api-version=2024-07-01",
    headers={"api-key": os.environ.get("AZURE_SEARCH_KEY", "")},
)
search_enabled = True
try:
    with urllib.request.urlopen(search_request, timeout=30) as response:
        search_indexes = [index["name"] for index in json.loads(response.read())["value"]]
except urllib.error.HTTPError as error:
    search_enabled, search_indexes = False, []
    reason = "the service is not deployed or the endpoint is wrong" if error.code == 404 else "see the HTTP status"
    print(f"[search] ⚠️ Azure AI Search disabled: HTTP {error.code} ({reason}); set AZURE_SEARCH_ENDPOINT once it exists")
if search_enabled:
    print(f"[search] indexes: {search_indexes} ✅")
