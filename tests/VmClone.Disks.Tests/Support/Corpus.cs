using System;
using System.IO;
using System.IO.Compression;
using ICSharpCode.SharpZipLib.BZip2;

namespace VmClone.Disks.Tests.Support;

/// <summary>
/// The shared conformance corpus (real images from Hyper-V, VirtualBox, qemu). It is read in
/// place from VMCLONE_CORPUS or ../shared/corpus beside the repository, never copied into it;
/// compressed images are inflated into a temp folder per test.
/// </summary>
public static class Corpus
{
    public static string? Root
    {
        get
        {
            string? env = Environment.GetEnvironmentVariable("VMCLONE_CORPUS");
            if (!string.IsNullOrEmpty(env) && Directory.Exists(env))
                return env;
            string? dir = AppContext.BaseDirectory;
            while (dir is not null)
            {
                if (File.Exists(Path.Combine(dir, "VmClone.sln")))
                {
                    string candidate = Path.GetFullPath(Path.Combine(dir, "..", "shared", "corpus"));
                    return Directory.Exists(candidate) ? candidate : null;
                }
                dir = Path.GetDirectoryName(dir);
            }
            return null;
        }
    }

    /// <summary>Why corpus tests cannot run, or null (never a skip under CI=true).</summary>
    public static string? SkipReason => Root is null && !Oracle.IsCi
        ? "corpus not found: set VMCLONE_CORPUS or place shared/corpus beside the repository"
        : null;

    /// <summary>Full path of a corpus file, e.g. "discutils/btrfs.vhdx.gz".</summary>
    public static string Source(string relative) =>
        Path.Combine(Root ?? throw new InvalidOperationException("The corpus (../shared/corpus or VMCLONE_CORPUS) was not found."), relative);

    /// <summary>
    /// A writable copy of a corpus image in <paramref name="folder"/>, decompressed, under its
    /// original name without the .gz/.bz2 suffix (VMDK descriptors name their own file).
    /// </summary>
    public static string Extract(string relative, TempFolder folder)
    {
        string source = Source(relative);
        string name = Path.GetFileName(relative);
        string target;
        if (name.EndsWith(".gz", StringComparison.Ordinal))
        {
            target = folder.File(name.Substring(0, name.Length - 3));
            using var input = new GZipStream(File.OpenRead(source), CompressionMode.Decompress);
            using var output = File.Create(target);
            input.CopyTo(output);
        }
        else if (name.EndsWith(".bz2", StringComparison.Ordinal))
        {
            target = folder.File(name.Substring(0, name.Length - 4));
            using var input = new BZip2InputStream(File.OpenRead(source));
            using var output = File.Create(target);
            input.CopyTo(output);
        }
        else
        {
            target = folder.File(name);
            File.Copy(source, target);
        }
        File.SetAttributes(target, FileAttributes.Normal);
        return target;
    }
}

/// <summary>A fact that needs the corpus: skipped where it is missing, never under CI=true.</summary>
public sealed class CorpusFactAttribute : Xunit.FactAttribute
{
    public CorpusFactAttribute()
    {
        if (Corpus.SkipReason is string reason)
            Skip = reason;
    }
}

/// <summary>A theory that needs the corpus.</summary>
public sealed class CorpusTheoryAttribute : Xunit.TheoryAttribute
{
    public CorpusTheoryAttribute()
    {
        if (Corpus.SkipReason is string reason)
            Skip = reason;
    }
}
