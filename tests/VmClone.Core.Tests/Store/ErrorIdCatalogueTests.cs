using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text.RegularExpressions;
using VmClone.Core.Store;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// The error ids scripts match on come from one catalogue (<see cref="StoreErrorIds"/>): the code
/// writes no id as a string of its own, and the help explains every id in the catalogue.
/// </summary>
public class ErrorIdCatalogueTests
{
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "VmClone.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("VmClone.sln not found above " + AppContext.BaseDirectory);
    }

    private static IReadOnlyList<string> CatalogueIds()
    {
        var ids = typeof(StoreErrorIds).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f =>
            {
                string value = (string)f.GetRawConstantValue()!;
                Assert.Equal(f.Name, value);
                return value;
            })
            .ToList();
        Assert.True(ids.Count >= 50, $"the catalogue holds only {ids.Count} ids");
        return ids;
    }

    [Fact]
    public void EveryIdInTheCatalogueIsExplainedInTheHelp()
    {
        string help = File.ReadAllText(Path.Combine(RepositoryRoot(), "en-US", "about_VmClone_Errors.help.txt"));
        int errors = help.IndexOf("\nERRORS\n", StringComparison.Ordinal);
        Assert.True(errors >= 0, "about_VmClone_Errors has no ERRORS section");
        string section = help.Substring(errors);
        var missing = CatalogueIds().Where(id => !Regex.IsMatch(section, $@"^    {id}\r?\n        \S", RegexOptions.Multiline)).ToList();
        Assert.True(missing.Count == 0, "not explained in about_VmClone_Errors: " + string.Join(", ", missing));
        var undoable = CatalogueIds().Where(id => !Regex.IsMatch(section, $@"^    {id}\r?\n(        .*\r?\n)*?        What to do: ", RegexOptions.Multiline)).ToList();
        Assert.True(undoable.Count == 0, "no 'What to do' for: " + string.Join(", ", undoable));
    }

    // Where an id is written: an exception of the store or the disk operations, an error record,
    // the mapping of engine exceptions to ids, or a comparison with an error's id.
    private static readonly Regex IdLiteral = new(
        @"new\s+(StoreException|VmCloneException)\s*\(\s*""" +
        @"|new\s*\(\s*""[A-Z][A-Za-z]+""\s*,\s*(VmClone\.Core\.)?VmCloneErrorKind" +
        @"|ErrorRecord\s*\([^;]*?,\s*""[A-Z][A-Za-z]+""\s*," +
        @"|=>\s*\(\s*""[A-Z][A-Za-z]+""\s*,\s*ErrorCategory" +
        @"|ErrorId\s*[!=]=\s*""",
        RegexOptions.Compiled);

    [Fact]
    public void NoErrorIdIsWrittenAsAStringOutsideTheCatalogue()
    {
        string src = Path.Combine(RepositoryRoot(), "src");
        var ids = new HashSet<string>(CatalogueIds());
        var found = new List<string>();
        foreach (string file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            if (Path.GetFileName(file) == "StoreErrorIds.cs" || file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
                continue;
            string[] lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                string line = lines[i];
                if (line.TrimStart().StartsWith("//", StringComparison.Ordinal))
                    continue;
                if (IdLiteral.IsMatch(line))
                    found.Add($"{Path.GetRelativePath(src, file)}:{i + 1}: {line.Trim()}");
                // A catalogue id spelled as a string anywhere else is a copy that can drift.
                foreach (Match m in Regex.Matches(line, @"""([A-Z][A-Za-z]+)"""))
                {
                    if (ids.Contains(m.Groups[1].Value))
                        found.Add($"{Path.GetRelativePath(src, file)}:{i + 1}: {line.Trim()}");
                }
            }
        }
        Assert.True(found.Count == 0, "error ids written outside StoreErrorIds:\n" + string.Join("\n", found.Distinct()));
    }
}
