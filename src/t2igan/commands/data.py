"""``t2igan data prepare cub|coco|flowers [SOURCE ...]``: turn the published archives into the folder a
preset reads (:func:`t2igan.data.prepare.prepare`); ``t2igan data sources [NAME]``: list those archives."""

from __future__ import annotations

HELP = "prepare a data set from its published archives (data prepare cub|coco|flowers), list them (data sources)"
DATASETS = ("cub", "coco", "flowers")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    p = sub.add_parser(
        "prepare", help="unpack, check and lay out a data set",
        description="Build the folder a preset reads (data/birds, data/coco, data/flowers) from the published "
                    "archives: the files you pass (archives or folders, in any order), then those in the download "
                    "folder, then downloads of what is still missing (when online). Every image and caption file "
                    "is checked; the counts per split and what was left out, with the reason, are printed. See "
                    "'t2igan data sources' for the archives, their URLs and checksums.")
    p.add_argument("dataset", choices=DATASETS, help="which data set to prepare")
    p.add_argument("sources", nargs="*", help="archives you downloaded (CUB_200_2011.tgz, birds.zip, ...) or folders "
                                              "that hold them or their unpacked files")
    p.add_argument("-o", "--out", help="output folder (default: the presets' data.root: data/birds, data/coco, "
                                       "data/flowers)")
    p.add_argument("--download-dir", help="where archives are looked for and downloaded to (default: "
                                          "$T2IGAN_CACHE/data, else ~/.cache/t2igan/data)")
    p.add_argument("--offline", action="store_true", help="never download (as T2IGAN_OFFLINE=1)")
    p.add_argument("--no-hash-check", action="store_true",
                   help="use an archive whose MD5 differs from the published one (its files are still checked)")
    p.add_argument("--force", action="store_true", help="prepare again over a folder prepared before")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    s = sub.add_parser("sources", help="list the published archives of each data set",
                       description="The archives 't2igan data prepare' reads: file name, size, MD5, URL.")
    s.add_argument("dataset", nargs="?", choices=DATASETS, help="only this data set (default: all)")


def run(args) -> None:
    from ..data import prepare as prep

    if args.data_command == "sources":
        from ..data.download import archive_dir, human_size

        for name in [args.dataset] if args.dataset else prep.DATASETS:
            print(f"{name} (t2igan data prepare {name} -> {prep.DEFAULT_OUT[name]}):")
            for a in prep.ARCHIVES[name]:
                md5 = f"md5 {a.md5}" if a.md5 else "no published checksum"
                extra = "" if a.fetch else " [optional: used when given, never downloaded]"
                print(f"  {a.filename}: {a.what}; {human_size(a.size)}, {md5}{extra}\n    {a.manual_url}")
        print(f"download folder: {archive_dir()}")
        return
    prep.prepare(args.dataset, args.sources, out=args.out, download_dir=args.download_dir, offline=args.offline,
                 hash_check=not args.no_hash_check, force=args.force, progress=not args.no_progress)
