"""The inventory: loaded through ansible-core, validated into typed models, checked, edited."""
