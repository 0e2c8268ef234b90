using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace VmClone.Disks.Tests.Support;

/// <summary>VMDK-specific use of the oracles: qemu-io writes, qemu-img check, pyvmdk reads of chains.</summary>
public static class VmdkOracle
{
    public static readonly string[] QemuTools = { "qemu-img", "qemu-io" };
    public static readonly string[] AllTools = { "qemu-img", "qemu-io", "vmdkinfo" };
    public static readonly string[] Python = { "pyvmdk" };

    private static string Q(string s) => "\"" + s.Replace("\"", "\\\"") + "\"";

    /// <summary>Runs qemu-io commands (e.g. "write -P 0x5a 4096 1000") against a VMDK file.</summary>
    public static void QemuIo(string path, params string[] commands)
    {
        var args = new StringBuilder("-f vmdk");
        foreach (string c in commands)
            args.Append(" -c ").Append(Q(c));
        args.Append(' ').Append(Q(path));
        Oracle.Run("qemu-io", args.ToString());
    }

    public static void QemuCreate(string path, long size, string? backing = null, string? options = null)
    {
        string b = backing is null ? "" : $"-b {Q(backing)} -F vmdk ";
        string o = options is null ? "" : $"-o {options} ";
        Oracle.Run("qemu-img", $"create -f vmdk {o}{b}{Q(path)} {size}");
    }

    /// <summary>qemu-img check: exit code and output.</summary>
    public static (int Code, string Output) QemuCheck(string path)
    {
        var (code, o, e) = Oracle.Run("qemu-img", $"check -f vmdk {Q(path)}", throwOnError: false);
        return (code, o + e);
    }

    public static string QemuInfo(string path) => Oracle.Run("qemu-img", $"info -f vmdk {Q(path)}").StdOut;

    public static void QemuConvert(string source, string target, string outputFormat, string? options = null)
    {
        string o = options is null ? "" : $"-o {options} ";
        Oracle.Run("qemu-img", $"convert -O {outputFormat} {o}{Q(source)} {Q(target)}");
    }

    /// <summary>
    /// sha256 of the content of <paramref name="top"/> read by libvmdk, with each file's parent
    /// given explicitly (<paramref name="chain"/> = top first, down to the base).
    /// </summary>
    public static string PyvmdkSha256(IReadOnlyList<string> chain)
    {
        const string script = @"
import sys, hashlib, pyvmdk
paths = sys.argv[1:]
handles = []
for p in paths:
    h = pyvmdk.handle()
    h.open(p)
    h.open_extent_data_files()
    handles.append(h)
for i in range(len(handles) - 1):
    handles[i].set_parent(handles[i + 1])
top = handles[0]
size = top.get_media_size()
sha = hashlib.sha256()
off = 0
while off < size:
    n = min(16 << 20, size - off)
    sha.update(top.read_buffer_at_offset(n, off))
    off += n
print(sha.hexdigest())
";
        return Oracle.RunPython(script, chain.ToArray());
    }

    /// <summary>vmdkinfo's report (throws when it fails).</summary>
    public static string VmdkInfo(string path) => Oracle.Run("vmdkinfo", Q(path)).StdOut;

    /// <summary>The CID in a VMDK's descriptor, as qemu-img info reports it (decimal there), as 8 hex digits.</summary>
    public static string QemuCid(string path)
    {
        foreach (string line in QemuInfo(path).Split('\n'))
        {
            string t = line.Trim();
            if (t.StartsWith("cid:", StringComparison.Ordinal))
                return uint.Parse(t.Substring(4).Trim()).ToString("x8");
        }
        throw new InvalidOperationException("qemu-img info printed no cid for " + path);
    }
}

/// <summary>Content helpers for VMDK tests.</summary>
public static class VmdkTestData
{
    /// <summary>sha256 of a whole disk read through our engine.</summary>
    public static string Sha256(string path, DiskOpenOptions? options = null)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, options);
        return Hashing.Sha256Stream(disk.Content);
    }

    public static byte[] ReadAll(string path)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        var ms = new MemoryStream();
        disk.Content.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Writes random data of a given file size for qemu-img convert inputs (some runs of zeros kept).</summary>
    public static byte[] RandomImage(int seed, int size)
    {
        var rng = new Random(seed);
        byte[] data = new byte[size];
        int pos = 0;
        while (pos < size)
        {
            int run = rng.Next(1, 300_000);
            run = Math.Min(run, size - pos);
            if (rng.Next(3) != 0)
            {
                byte[] chunk = new byte[run];
                rng.NextBytes(chunk);
                if (rng.Next(2) == 0)
                    Array.Fill(chunk, (byte)rng.Next(256)); // compressible
                Buffer.BlockCopy(chunk, 0, data, pos, run);
            }
            pos += run;
        }
        return data;
    }
}
