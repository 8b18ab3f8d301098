# COSMOS DB: read the lab's conversation log
cosmos_endpoint = os.environ.get("COSMOS_ENDPOINT", "")
cosmos_database = os.environ.get("COSMOS_DATABASE", "labdb")
cosmos_container = os.environ.get("COSMOS_CONTAINER", "conversations")
cosmos_url = f"{cosmos_endpoint}dbs/{cosmos_database}/colls/{cosmos_container}/docs"
request = urllib.request.Request(
    cosmos_url,
    data=json.dumps({"query": "SELECT * FROM c"}).encode("utf-8"),
    headers={
        "Content-Type": "application/query+json",
        "x-ms-documentdb-isquery": "True",
        "authorization": f"type=master&ver=1.0&sig={os.environ.get('COSMOS_KEY', '')}",
    },
    method="POST",
)
cosmos_enabled = True
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        documents = json.loads(response.read())["Documents"]
except urllib.error.HTTPError as error:
    detail = json.loads(error.read() or b"{}").get("message", "")
    cosmos_enabled, documents = False, []
    print(f"[cosmos] ⚠️ Cosmos DB disabled: HTTP {error.code}: {detail.splitlines()[0] if detail else 'no detail'}")
if cosmos_enabled:
    print(f"[cosmos] {len(documents)} documents read from {cosmos_container} ✅")
