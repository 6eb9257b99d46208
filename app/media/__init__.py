"""The media library: images uploaded for issues and branding, and where their bytes live."""
