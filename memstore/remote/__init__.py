"""Sharing a repository: remotes on any fsspec store, and push, fetch, pull, clone, fsck.

    layout        what a remote holds (versioned, documented), markers, ref files
    urls          which backend serves a URL; checked before anything is contacted
    transport     a store's files and its compare-and-swap of a ref (and delete): folder, s3,
                  fsspec_store (any other store: single-writer)
    connection    a remote opened and checked (marker, layout version, base model)
    remotes       named remotes and remote-tracking branches in the repository
    transfer      moving only the missing objects, verified on arrival, with progress
    stats         statistics, moved only with --with-stats
    push, push_tags, push_delete, fetch (and pull), clone, fsck, repair   the operations,
                  one module each"""
