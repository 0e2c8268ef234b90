using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace VmClone.Fuzz;

/// <summary>One file of a fuzz input: its name in the work folder and its bytes.</summary>
public sealed record FuzzFile(string Name, byte[] Bytes);

/// <summary>
/// How fuzz inputs are laid out. AFL++ takes inputs of at most 1 MiB and works best on a few
/// KiB, while a VHDX file is mostly holes (its log starts at 1 MiB, its BAT at 3 MiB); so a
/// file may be given <em>sparse</em>: the magic <c>VMCSPRS1</c>, a u32 file length, then records
/// of (u32 offset, u16 length, bytes). Anything without the magic is the file's bytes as they
/// are. A <em>chain</em> input holds several files, each as (u8 name length, name, u32 length,
/// file), the first one the disk to open. Lengths that run past the input are cut to what is
/// there, so a mutated length still yields files.
/// </summary>
public static class FuzzInput
{
    /// <summary>The magic that starts a sparse file.</summary>
    public static readonly byte[] SparseMagic = Encoding.ASCII.GetBytes("VMCSPRS1");

    /// <summary>A decoded file is never longer than this (a mutated length field must not cost a huge buffer).</summary>
    public const int MaxFileLength = 32 << 20;

    /// <summary>A chain input holds at most this many files.</summary>
    public const int MaxFiles = 6;

    private const int SparseHeader = 12;
    private const int RecordHeader = 6;

    /// <summary>The file's bytes: decoded when sparse, else the input itself.</summary>
    public static byte[] DecodeFile(ReadOnlySpan<byte> input)
    {
        if (!input.StartsWith(SparseMagic))
            return input.ToArray();
        long length = input.Length >= SparseHeader ? BinaryPrimitives.ReadUInt32LittleEndian(input.Slice(8)) : 0;
        // The records may reach past the stated length: the file then ends with the last record.
        var records = new List<(long At, int From, int Count)>();
        int pos = SparseHeader;
        while (pos + RecordHeader <= input.Length)
        {
            long at = BinaryPrimitives.ReadUInt32LittleEndian(input.Slice(pos));
            int count = BinaryPrimitives.ReadUInt16LittleEndian(input.Slice(pos + 4));
            pos += RecordHeader;
            count = Math.Min(count, input.Length - pos);
            if (at < MaxFileLength)
            {
                count = (int)Math.Min(count, MaxFileLength - at);
                records.Add((at, pos, count));
                length = Math.Max(length, at + count);
            }
            pos += count;
        }
        byte[] file = new byte[Math.Min(length, MaxFileLength)];
        foreach ((long at, int from, int count) in records)
            input.Slice(from, count).CopyTo(file.AsSpan((int)at));
        return file;
    }

    /// <summary>
    /// A file in the sparse form: every run of non-zero bytes (runs closer than 16 bytes merged)
    /// as one record. Used by the seed maker; small files and files with few holes are better
    /// given as they are (see <see cref="Compact"/>).
    /// </summary>
    public static byte[] EncodeSparse(ReadOnlySpan<byte> file)
    {
        if (file.Length > MaxFileLength)
            throw new ArgumentException($"A sparse fuzz input holds at most {MaxFileLength} bytes; this file has {file.Length}.", nameof(file));
        using var output = new MemoryStream();
        output.Write(SparseMagic, 0, SparseMagic.Length);
        WriteUInt32(output, (uint)file.Length);
        int pos = 0;
        while (pos < file.Length)
        {
            int start = file.Slice(pos).IndexOfAnyExcept((byte)0);
            if (start < 0)
                break;
            start += pos;
            int end = start;
            while (end < file.Length && end - start < ushort.MaxValue)
            {
                int zero = file.Slice(end).IndexOf((byte)0);
                if (zero < 0)
                {
                    end = file.Length;
                    break;
                }
                end += zero;
                int next = file.Slice(end).IndexOfAnyExcept((byte)0);
                if (next < 0 || next >= 16)
                    break;
                end += next;
            }
            end = Math.Min(end, start + ushort.MaxValue);
            WriteUInt32(output, (uint)start);
            output.WriteByte((byte)(end - start));
            output.WriteByte((byte)((end - start) >> 8));
            output.Write(file.Slice(start, end - start));
            pos = end;
        }
        return output.ToArray();
    }

    /// <summary>The smaller of the file as it is and its sparse form.</summary>
    public static byte[] Compact(byte[] file)
    {
        if (file.Length <= 4096 || file.Length > MaxFileLength)
            return file;
        byte[] sparse = EncodeSparse(file);
        return sparse.Length < file.Length / 2 ? sparse : file;
    }

    /// <summary>The files of a chain input, the first one the disk to open; names made safe and distinct.</summary>
    public static List<FuzzFile> DecodeChain(ReadOnlySpan<byte> input, string defaultExtension)
    {
        var files = new List<FuzzFile>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        int pos = 0;
        while (pos < input.Length && files.Count < MaxFiles)
        {
            int nameLength = Math.Min(input[pos], input.Length - pos - 1);
            pos++;
            string name = SafeName(input.Slice(pos, nameLength), files.Count, defaultExtension);
            pos += nameLength;
            int length = 0;
            if (pos + 4 <= input.Length)
            {
                length = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(input.Slice(pos)), (uint)(input.Length - pos - 4));
                pos += 4;
            }
            else
            {
                pos = input.Length;
            }
            byte[] bytes = DecodeFile(input.Slice(pos, length));
            pos += length;
            if (names.Add(name))
                files.Add(new FuzzFile(name, bytes));
        }
        if (files.Count == 0)
            files.Add(new FuzzFile("disk" + defaultExtension, Array.Empty<byte>()));
        return files;
    }

    /// <summary>A chain input from files (each given as it is or sparse, see <see cref="Compact"/>); the first is the disk to open.</summary>
    public static byte[] EncodeChain(IEnumerable<FuzzFile> files)
    {
        using var output = new MemoryStream();
        foreach (FuzzFile f in files)
        {
            byte[] name = Encoding.ASCII.GetBytes(f.Name);
            if (name.Length > 255)
                throw new ArgumentException($"File name '{f.Name}' is longer than 255 bytes.", nameof(files));
            byte[] bytes = Compact(f.Bytes);
            output.WriteByte((byte)name.Length);
            output.Write(name, 0, name.Length);
            WriteUInt32(output, (uint)bytes.Length);
            output.Write(bytes, 0, bytes.Length);
        }
        return output.ToArray();
    }

    /// <summary>
    /// A name that stays inside the work folder: letters, digits, '.', '-', '_' only, never
    /// '.' or '..'; anything else becomes part&lt;index&gt; with the default extension.
    /// </summary>
    private static string SafeName(ReadOnlySpan<byte> raw, int index, string defaultExtension)
    {
        if (raw.Length is > 0 and <= 64)
        {
            bool ok = true;
            foreach (byte b in raw)
                ok &= b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9' or (byte)'.' or (byte)'-' or (byte)'_';
            string name = Encoding.ASCII.GetString(raw);
            if (ok && name.Trim('.').Length > 0)
                return name;
        }
        return $"part{index}{defaultExtension}";
    }

    private static void WriteUInt32(Stream s, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        s.Write(b);
    }
}
