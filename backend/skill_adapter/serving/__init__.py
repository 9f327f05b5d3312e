"""Using an adapter: the OpenAI-compatible model server, the API's ``/v1`` proxy, and export.

Torch is imported only by ``engine`` and ``export`` (the model server process and the export command);
``protocol``, ``catalog``, ``proxy`` and ``vllm`` stay torch-free, so the API can import them.
"""
